"""`genbench sweep`: the command-line face of genbench.sweep (registered on genbench.cli.main)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from genbench import GenbenchError
from genbench.cli import _friendly_errors, main


def _listed(value) -> list[str]:
    """A grid axis from the command line ("a,b") or a sweep file (["a", "b"], or one value)."""
    values = value if isinstance(value, list) else str(value).split(",")
    return [str(v).strip() for v in values if str(v).strip()]


def _sweep_config(ctx, param, path):
    """--config FILE: the sweep file's keys become the defaults of the options (an option given wins)."""
    if path is None:
        return None
    from genbench.sweep import load_config

    try:
        config = load_config(path)
    except GenbenchError as e:
        raise click.BadParameter(str(e)) from None
    ctx.meta["sweep_grids"] = config.get("grid", [])
    flat = {k: v for k, v in config.items() if k not in ("slurm", "ray", "grid")}
    flat.update({("ray_" + k if not k.startswith("ray_") else k): v for k, v in config.get("ray", {}).items()})
    flat.update(config.get("slurm", {}))
    for key in ("model", "dataset", "protocol", "seeds"):
        if isinstance(flat.get(key), list):
            flat[key] = ",".join(map(str, flat[key]))
    if "protocol" in flat:
        flat["tiers"] = flat.pop("protocol")  # the option --protocol is the parameter `tiers`
    ctx.default_map = {**(ctx.default_map or {}), **{k.replace("-", "_"): v for k, v in flat.items()}}
    return path


@main.command(epilog="A sweep file (TOML, --config) holds the same options: model = [\"vae\", \"dcgan\"], "
                     "dataset = \"fashion-mnist\", protocol = \"quick\", seeds = [0, 1, 2], backend = \"slurm\", "
                     "and [slurm] partition = \"gpu\", gpus = 1 (or [ray] address = \"auto\"); options given on "
                     "the command line win. Several [[grid]] tables, each with its own model / dataset / protocol "
                     "/ seeds, make one sweep of their union.")
@click.option("--config", type=click.Path(path_type=Path, dir_okay=False), callback=_sweep_config, is_eager=True,
              expose_value=False, help="A sweep file (TOML) with the options below.")
@click.option("--model", default=None, help="Model(s), comma separated (see `genbench list models`).")
@click.option("--dataset", default=None, help="Dataset(s), comma separated.")
@click.option("--protocol", "tiers", default="quick", show_default=True, help="Tier(s), comma separated.")
@click.option("--seeds", default="0", show_default=True, help="Seeds, comma separated (e.g. 0,1,2).")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("sweeps/sweep"),
              show_default=True, help="One run directory per run below it, and logs/ with one log per run.")
@click.option("--backend", type=click.Choice(["local", "slurm", "ray"]), default="local", show_default=True,
              help="local: processes on this machine; slurm: submitit jobs; ray: Ray tasks.")
@click.option("--jobs", default=1, show_default=True, help="local: runs at once (each uses all the cores it sees).")
@click.option("--board", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Submit every finished run to this board and build it at the end.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--offline", is_flag=True, help="Runs never download.")
@click.option("--max-minutes", type=float, default=None,
              help="Each run stops after this many minutes with a checkpoint; the next sweep continues it.")
@click.option("--partition", default=None, help="slurm: partition.")
@click.option("--account", default=None, help="slurm: account.")
@click.option("--time-minutes", default=240, show_default=True,
              help="slurm: time limit of one job; a longer run is checkpointed and requeued.")
@click.option("--gpus", default=0, show_default=True, help="slurm: GPUs per run.")
@click.option("--cpus", default=4, show_default=True, help="slurm: CPUs per run.")
@click.option("--mem-gb", type=int, default=None, help="slurm: memory per run.")
@click.option("--array", is_flag=True, help="slurm: one job array for the grid instead of one job per run.")
@click.option("--slurm-cluster", default=None, hidden=True, help="submitit's cluster (local / debug for tests).")
@click.option("--signal-delay-s", default=120, show_default=True, hidden=True,
              help="slurm: seconds between the scheduler's warning signal and the time limit.")
@click.option("--ray-address", default="auto", show_default=True, help="ray: the cluster (`auto`: the running one).")
@click.option("--ray-cpus", default=1.0, show_default=True, help="ray: CPUs per run.")
@click.option("--ray-gpus", default=0.0, show_default=True, help="ray: GPUs per run.")
@click.option("--dry-run", is_flag=True, help="List the runs and their state, then exit.")
@_friendly_errors
def sweep(model, dataset, tiers, seeds, out, backend, jobs, board, device, offline, max_minutes, partition, account,
          time_minutes, gpus, cpus, mem_gb, array, slurm_cluster, signal_delay_s, ray_address, ray_cpus, ray_gpus,
          dry_run) -> None:
    """Run a grid of `genbench run`s, models x datasets x tiers x seeds, each into its own directory under OUT.

    Idempotent: finished runs are skipped and interrupted ones continue exactly (--resume), so the same command
    continues a sweep. Every run gets the metrics `genbench run` would give it, whichever backend runs it.
    """
    from genbench import sweep as sw

    try:
        seed_list = [int(v) for v in _listed(seeds)]
    except ValueError:
        raise click.BadParameter(f"{seeds!r}: seeds are whole numbers, comma separated", param_hint="--seeds")
    options = (*(["--device", device] if device != "auto" else []), *(["--offline"] if offline else []),
               *(["--max-minutes", f"{max_minutes:g}"] if max_minutes else []))
    axes = {"model": model, "dataset": dataset, "protocol": tiers, "seeds": seed_list}
    grids = [{**axes, **g} for g in click.get_current_context().meta.get("sweep_grids", [])] or [axes]
    for key, option in (("model", "--model"), ("dataset", "--dataset")):
        if any(not g[key] for g in grids):
            raise click.UsageError(f"give {option}, or a sweep file (--config) that names it")
    grid, seen = [], set()
    for g in grids:  # the union of the sweep file's grids, each run once, in order
        for job in sw.grid(models=_listed(g["model"]), datasets=_listed(g["dataset"]),
                           tiers=_listed(g["protocol"]), seeds=[int(v) for v in _listed(g["seeds"])], out=out,
                           options=options, warn=lambda text: click.echo(f"Warning: {text}", err=True)):
            if job.out not in seen:
                seen.add(job.out)
                grid.append(job)
    if dry_run:
        for job in grid:
            click.echo(f"{job.state():>11}  {job.name}")
        return
    if backend == "local":
        engine = sw.LocalBackend(jobs)
    elif backend == "slurm":
        engine = sw.SlurmBackend(sw.SlurmSettings(partition=partition, account=account, time_minutes=time_minutes,
                                                  gpus=gpus, cpus=cpus, memory_gb=mem_gb, array=array,
                                                  cluster=slurm_cluster, signal_delay_s=signal_delay_s),
                                 out / "submitit")
    else:
        engine = sw.RayBackend(ray_address, cpus=ray_cpus, gpus=ray_gpus)
    outcomes = sw.sweep(grid, engine, echo=click.echo)
    if board is not None:
        sw.submit_to_board(outcomes, board, echo=click.echo)
    failed = [o for o in outcomes if o.status == "failed"]
    stopped = [o for o in outcomes if o.status == "stopped"]
    if failed or stopped:
        click.echo(f"{len(failed)} failed, {len(stopped)} stopped; the same command continues the rest.", err=True)
        sys.exit(1 if failed else 3)
