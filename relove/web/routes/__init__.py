"""The console's routes, one module per resource (the same names as the services)."""
