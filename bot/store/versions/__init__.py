"""One module per schema version; each holds the DDL exactly as it was when that version shipped."""
