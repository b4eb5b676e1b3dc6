"""embedlab: choose an embedding model for RAG by measuring it.

Hydra meets the code only at one edge: :mod:`embedlab.config` (config -> specs), the job
wrapper :mod:`embedlab.jobs` and the report's Hydra callback; every other module takes
plain specs and arguments and can be used from a REPL.
"""

__version__ = "0.1.0"

from embedlab.console import quiet_third_party_logs

quiet_third_party_logs()  # before any faiss import or Trainer: logger settings only, no heavy import
