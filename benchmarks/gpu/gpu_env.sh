# Sourced by the GPU checks (bash): the packages a bare GPU machine lacks, without internet. The machine needs only torch:
# where gymnasium, mujoco, metaworld or tyro is missing, or transformers and peft are not the pinned versions, the wheels
# in wheels/ (make gpu-wheels; or set WHEELS) are installed into .gpu_check/site, ahead of the machine's own packages.
# untrained_priors DIR LLM makes the checks' demonstrations and untrained priors. Nothing here renders, so MuJoCo's GL
# is off unless MUJOCO_GL says otherwise (such a machine may lack the GL libraries).
wheels="${WHEELS:-wheels}"
python="${PYTHON:-python3}"
pinned() {  # gymnasium, mujoco, metaworld and tyro installed, transformers and peft at requirements.txt's versions
    # (read from the packages' metadata: importing them all would cost about 10 s)
    "$python" - <<'PY' 2>/dev/null
import importlib.metadata, importlib.util, re
assert all(importlib.util.find_spec(name) for name in ("gymnasium", "mujoco", "metaworld", "tyro"))
pins = dict(re.findall(r"^([\w-]+)==(\S+)", open("requirements.txt").read(), re.M))
assert tuple(importlib.metadata.version(name) for name in ("transformers", "peft")) == (pins["transformers"], pins["peft"])
PY
}
export MUJOCO_GL="${MUJOCO_GL:-disable}" HF_HUB_OFFLINE=1
if ! pinned && compgen -G "$wheels/*.whl" >/dev/null; then
    "$python" -m pip install --quiet --no-index --no-deps --upgrade --target .gpu_check/site "$wheels"/*.whl
    export PYTHONPATH="$PWD/.gpu_check/site${PYTHONPATH:+:$PYTHONPATH}"
fi
untrained_priors() {  # DIR LLM: demonstrations of both benchmarks in DIR, and 2-step priors of LLM fine-tuned on them in
    # DIR/priors/prior__<env>__check__1 (grid.py's layout); the checks time them, and speed does not depend on the weights
    local dir="$1" llm="$2" env
    "$python" collect_demos.py --env clevr --episodes 30 --out "$dir/clevr.npz" >/dev/null
    "$python" collect_demos.py --env metaworld --task drawer-close-v3 --episodes 2 --max-episode-steps 100 \
        --out "$dir/metaworld.npz" >/dev/null
    for env in clevr metaworld; do
        "$python" finetune_prior.py --demos "$dir/$env.npz" --llm "$llm" --train-steps 2 --eval-every 2 \
            --out "$dir/priors/prior__${env}__check__1" --run-dir "$dir/runs_$env" >/dev/null
    done
}
