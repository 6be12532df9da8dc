"""Generic helpers with one home each: files, seeding, validation, sampling."""
