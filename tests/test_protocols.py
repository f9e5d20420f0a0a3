"""Protocols are versioned: any change that can move a number must change the hash and bump the version."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from genbench import registry
from genbench.protocols import BUILTIN, TIERS

PINNED = Path(__file__).with_name("protocol_hashes.json")


def test_every_protocol_hash_is_pinned():
    pinned = json.loads(PINNED.read_text())
    current = {p.ref: p.hash for p in BUILTIN}
    changed = [ref for ref in current if ref in pinned and pinned[ref] != current[ref]]
    assert not changed, (f"{changed} changed without a version bump: bump `version` in its genbench/protocols/ module "
                         f"and pin the new hash in {PINNED.name}")
    assert set(current) == set(pinned), "pin new protocols / drop retired ones in protocol_hashes.json"


def test_names_and_registry():
    for p in BUILTIN:
        assert p.tier in TIERS and p.version >= 1
        assert p.ref == f"{p.dataset}/{p.model}/{p.tier}@{p.version}"
        assert registry.PROTOCOLS[p.ref] is p
        assert p.dataset in registry.DATASETS and p.model in registry.MODELS
        assert p.evaluation.split in registry.DATASETS[p.dataset].splits
        assert p.train_split in registry.DATASETS[p.dataset].splits
    assert registry.protocol("digits/vae/smoke") is registry.PROTOCOLS["digits/vae/smoke@2"]


@pytest.mark.parametrize("change", [
    dict(steps=41), dict(batch_size=33), dict(ema=0.999), dict(train_split="test"),
    dict(optimizer=dataclasses.replace(BUILTIN[0].optimizer, lr=2e-3)),
    dict(evaluation=dataclasses.replace(BUILTIN[0].evaluation, iwae_k=9)),
])
def test_hash_covers_every_setting(change):
    p = registry.protocol("digits/vae/smoke")
    assert dataclasses.replace(p, **change).hash != p.hash


def test_hash_covers_the_model_config_but_not_the_source_note():
    p = registry.protocol("digits/vae/smoke")
    field = dataclasses.fields(p.model_config)[0].name
    bumped = dataclasses.replace(p.model_config, **{field: getattr(p.model_config, field) + 1})
    assert dataclasses.replace(p, model_config=bumped).hash != p.hash
    assert dataclasses.replace(p, source="another citation").hash == p.hash


def test_optional_fields_are_hashed_only_once_set():
    """Fields added after protocols were published leave existing hashes alone while unset (the pinned
    hashes above predate them), and count like any other field once a protocol sets them."""
    from genbench.metrics import ais
    from genbench.optim import Optimizer, Schedule
    from genbench.protocols import OPTIONAL_FIELDS, Evaluation, Protocol

    from genbench.baselines import pixelcnn

    p = registry.protocol("digits/vae/smoke")
    owners = {"evaluation": Evaluation, "protocol": Protocol, "optimizer": Optimizer}
    declared = {name: owner for owner, cls in owners.items() for name in (f.name for f in dataclasses.fields(cls))}
    in_model_configs = {"num_classes"}  # a model Config's optional field (pixelcnn.Config)
    in_schedules = {"milestones", "gamma", "decay_start"}  # genbench.optim.Schedule's
    assert in_schedules <= {f.name for f in dataclasses.fields(Schedule)}
    assert OPTIONAL_FIELDS - in_model_configs - in_schedules - {"kinetic_energy", "jacobian_norm"} <= set(declared)
    assert in_model_configs <= {f.name for f in dataclasses.fields(pixelcnn.Config)}
    in_model_configs |= in_schedules  # neither is held by this protocol (its optimizer has no schedule)
    gated = registry.protocol("fashion-mnist/gated-pixelcnn/quick")
    assert gated.model_config.num_classes is None and "num_classes" not in gated.to_dict()["model_config"]
    conditioned = dataclasses.replace(gated, model_config=dataclasses.replace(gated.model_config, num_classes=10))
    assert conditioned.hash != gated.hash and conditioned.to_dict()["model_config"]["num_classes"] == 10
    # FFJORD's RNODE penalty weights: absent from version 1 of its quick protocol, hashed in version 2
    from genbench.baselines import ffjord

    rnode = {"kinetic_energy", "jacobian_norm"}
    assert rnode <= {f.name for f in dataclasses.fields(ffjord.Config)}
    in_model_configs |= rnode
    v1, v2 = (registry.protocol(f"fashion-mnist/ffjord/quick@{v}") for v in (1, 2))
    assert not rnode & set(v1.to_dict()["model_config"]) and v2.to_dict()["model_config"]["kinetic_energy"] == 0.01
    unpenalized = dataclasses.replace(v2, model_config=dataclasses.replace(v2.model_config, jacobian_norm=None))
    assert unpenalized.hash != v2.hash
    plain = p.to_dict()
    for name in OPTIONAL_FIELDS - in_model_configs:
        holder = {"evaluation": p.evaluation, "protocol": p, "optimizer": p.optimizer}[declared[name]]
        assert getattr(holder, name) is None, name
        assert name not in (plain if declared[name] == "protocol" else plain[declared[name]])
    changes = [dict(evaluation=dataclasses.replace(p.evaluation, **change)) for change in (
        dict(subset_seed=0), dict(disentanglement=Evaluation(batch_size=7)), dict(reconstruct_images=10),
        dict(modes="classes"), dict(snapshot_samples=100), dict(temperatures=(0.7, 1.0)), dict(temperature_samples=50))]
    changes += [dict(evaluation=dataclasses.replace(p.evaluation, ais=ais.Settings(chains=4)))]
    changes += [dict(snapshot_every=10), dict(optimizer=dataclasses.replace(p.optimizer, schedule=Schedule()))]
    for change in changes:
        assert dataclasses.replace(p, **change).hash != p.hash, change
    # a schedule's step decay: absent from a schedule without it, hashed once set
    warm = dataclasses.replace(p, optimizer=dataclasses.replace(p.optimizer, schedule=Schedule(warmup=5)))
    assert set(warm.to_dict()["optimizer"]["schedule"]) == {"warmup", "decay"}
    stepped = dataclasses.replace(warm, optimizer=dataclasses.replace(p.optimizer, schedule=Schedule(
        warmup=5, decay="step", milestones=(10,), gamma=0.3)))
    assert stepped.hash != warm.hash and stepped.to_dict()["optimizer"]["schedule"]["milestones"] == [10]


def test_hash_is_stable_across_processes():
    code = "from genbench import registry; print(registry.protocol('fashion-mnist/vae/quick').hash)"
    hashes = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2")}
    assert hashes == {registry.protocol("fashion-mnist/vae/quick").hash}


def test_unknown_tier_and_pair_explain_what_exists():
    from genbench import GenbenchError

    with pytest.raises(GenbenchError, match="tiers offered: quick, smoke"):
        registry.find_protocol(model="vae", dataset="digits", tier="standard")
    with pytest.raises(GenbenchError, match="unknown model 'vea'. Did you mean vae"):
        registry.find_protocol(model="vea", dataset="digits", tier="quick")
