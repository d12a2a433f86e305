"""Semi-structured documents: the MongoDB store (FerretDB natively) and their landing in Delta."""

#: Every document version, as landed (raw JSON plus the extracted fields).
BRONZE_TABLE = "bronze/documents/documents"
#: The latest version of each document.
SILVER_TABLE = "silver/documents/documents"
#: Curated claims with the notes and adjuster reports written about them.
CLAIMS_WITH_NOTES_TABLE = "silver/insurance/claims_with_notes"
