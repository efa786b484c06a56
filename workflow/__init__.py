"""lightHPC-SFN mission domain: models, planning, state, persistence, workloads."""
