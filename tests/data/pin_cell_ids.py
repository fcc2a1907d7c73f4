"""The cell ids of the configs behind the studies (default cell, robustness, tuning, seed losses and methods, tuned
values, injectors, evaluators, a scorer), pinned in ``cell_ids.json`` when they were recorded (commit 09feb06), so a
change that would move them (and make every study on disk stale) fails ``tests/test_identity.py``.

    python tests/data/pin_cell_ids.py tests/data/cell_ids.json     # re-record: only for an intended break
"""
import json
import sys

from omegaconf import open_dict

from bench.cell.identity import cell_id
from bench.config.compose import compose

ROB = ["dpo", "ipo", "cdpo", "rdpo", "ropo", "simpo", "hinge", "drdpo", "sympo", "udpo"]
SEED = ["fdpo", "sppo", "madpo", "smdpo", "dadpo", "ncdpo", "anchored", "asft"]
conds4 = [["noise=random_flip", "noise.rate=0"], ["noise=random_flip", "noise.rate=0.2"], ["noise=random_flip", "noise.rate=0.4"], ["noise=length_biased", "noise.rate=0.4"]]


def cases() -> dict[str, list[str]]:
    cases = {"default": []}
    for loss in ROB:
        for c in conds4:
            cases[f"robustness/{loss}/{c[0][6:]}@{c[1][11:]}/seed100"] = ["experiment=robustness", f"loss={loss}", *c, "seed=100"]
            cases[f"tune/{loss}/{c[0][6:]}@{c[1][11:]}/lr4e-4"] = ["experiment=tune", f"loss={loss}", *c, "seed=0", "train.learning_rate=4e-4"]
    for loss in SEED:
        for c in (conds4[0], conds4[2], conds4[3]):
            cases[f"seed_losses/{loss}/{c[0][6:]}@{c[1][11:]}/seed101"] = ["experiment=seed_losses", f"loss={loss}", *c, "seed=101"]
    for m in ["curriculum", "rm_ensemble", "self_play", "ropo_full"]:
        for c in (conds4[0], conds4[2], conds4[3]):
            loss = "ropo" if m == "ropo_full" else "dpo"
            cases[f"seed_methods/{m}/{c[0][6:]}@{c[1][11:]}/seed102"] = ["experiment=seed_methods", f"loss={loss}", f"method={m}", *c, "seed=102"]
    cases["tuned/dpo/oracle-like"] = ["experiment=robustness", "loss=dpo", "seed=103", "noise.rate=0.2", "train.learning_rate=8e-4", "loss.beta=0.05"]
    cases["tuned/ropo/knobs"] = ["experiment=robustness", "loss=ropo", "seed=104", "noise.rate=0.4", "train.learning_rate=1e-4", "loss.alpha=20", "loss.beta=0.2"]
    cases["injectors/annotator_biased@0.4"] = ["noise=annotator_biased", "noise.rate=0.4"]
    cases["injectors/bt_confidence@0.2"] = ["noise=bt_confidence", "noise.rate=0.2"]
    cases["evaluators/gold+reward_model"] = ["evaluator=[gold,reward_model]"]
    cases["scorer/madpo-oracle"] = ["loss=madpo", "scorer=oracle"]
    return cases


def ids(names=None) -> dict[str, str]:
    out = {}
    for name, o in cases().items():
        if names is not None and name not in names:
            continue
        cfg = compose(o)
        with open_dict(cfg):
            cfg.pop("hydra", None)
        out[name] = cell_id(cfg)
    return out


if __name__ == "__main__":
    got = ids()
    json.dump({k: {"overrides": cases()[k], "cell_id": v} for k, v in got.items()}, open(sys.argv[1], "w"), indent=1)
    print(len(got))
