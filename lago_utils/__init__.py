"""What the LaGO scripts share and is not the algorithm (CleanRL's cleanrl_utils/): the stage-2 scripts' argument
checks (checks.py), their run directory, logs, evaluation, summary and saved policy (run.py), observation
normalisation (running_norm.py), LaGO's prior lookup and diagnostics (guidance.py), BC-PPO's demonstrations (bc.py);
and for the prior: LLM loading (llm.py), the checkpoint format (prior_io.py), fast frozen inference (frozen_prior.py),
the device (device.py)."""
