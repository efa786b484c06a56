"""Embedded local mode: the real state machine on moto, Lambda handlers in-process.

``emulator.EmbeddedCloud`` runs moto's threaded server with Step Functions execution
enabled, ``lambda_runtime.LambdaRegistry`` dispatches Lambda invocations to Python
handlers, ``moto_compat`` holds the guarded fixes for moto's measured gaps (DESIGN §6)
and ``sfn_mock_config`` wires Step Functions Local's MockConfigFile.
"""
