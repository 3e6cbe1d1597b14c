"""cassava-survey: diagnose many cassava leaf photos through the cassava API."""
