"""A structured fuzzer for every verb: protobuf-level mutations of real models, hostile files and save targets,
and an oracle (ok with a valid output, or one clear error line and exit 1 with nothing written, never a hang).

``tests/test_fuzz.py`` runs a small fixed-seed budget; ``bench/fuzz_run.py`` runs a long one.
"""
