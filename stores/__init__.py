"""Where records and pipeline state live: Redis for coordination, JSONL and PostgreSQL for records."""
