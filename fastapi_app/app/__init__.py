"""The ingestor's FastAPI application (`app.main.create_app`)."""
