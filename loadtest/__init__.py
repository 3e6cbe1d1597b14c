"""Load, capacity and soak runs against the stack (run-local or compose), driven by Locust."""
