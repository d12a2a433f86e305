"""Semi-structured documents: the MongoDB store (FerretDB natively) and their landing in Delta."""
