"""AWS adapters: the only modules of ``workflow`` that talk to boto3. Each implements a
port of ``workflow.ports`` (the store, object storage, compute, task tokens)."""
