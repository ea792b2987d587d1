"""Use cases of the CRM. No FastAPI, no protocol imports: plain functions over a session."""
