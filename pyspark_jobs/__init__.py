"""Spark jobs: streaming landing to bronze, curation to silver/gold, maintenance.

`pyspark_jobs.session.build_spark_session` is the only way the jobs get a Spark session;
`pyspark_jobs.schemas` derives their Spark schemas from the contracts in `dataplatform`.
"""
