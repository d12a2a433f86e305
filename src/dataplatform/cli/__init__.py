"""The `dataplatform` command line."""
