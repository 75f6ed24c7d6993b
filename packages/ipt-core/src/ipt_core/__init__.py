"""IPT Care Service domain and persistence, shared by the API and the worker."""
