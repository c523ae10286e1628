"""Evaluation: lm-evaluation-harness model and task suite, retrieval sweeps, per-token mode logs.

    evals.harness      the `oryx` model for lm-eval (OryxLM) and `oryx eval lm`'s pass-through
    evals.retrieval    MQAR / needle accuracy per schedule, with the measured attention fraction
    evals.scoring      batched loglikelihood and generation over token ids (prefix reuse)
    evals.modelog      attention fraction counters and the per-token mode log
    evals.schedule     which schedule a model can run, mode masks per sequence
    evals/tasks/       lm-eval task YAMLs (offline suite, exported retrieval tasks, the paper's group)
"""
