"""The genbench command line. Each command only resolves its options and calls a plain function."""

from __future__ import annotations

import functools
import json
import os
import sys
import warnings
from pathlib import Path

import click

from genbench import GenbenchError, GenbenchWarning, __version__
from genbench.samples import SIZE_AND_CHANNEL_POLICY

_default_showwarning = warnings.showwarning


def _friendly_errors(fn):
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except GenbenchError as e:
            raise click.ClickException(str(e)) from None
    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(__version__, "--version", prog_name="genbench")
def main() -> None:
    """genbench: train generative-model baselines under versioned protocols and score them with exact metrics.

    \b
    Quick start (offline, about ten minutes on a laptop CPU):
      genbench run --model vae --dataset fashion-mnist --protocol quick
      genbench show runs/fashion-mnist-vae-quick-v2-seed0
    """
    warnings.showwarning = _show_warning


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """genbench's own warnings are for the user: one line, no source location."""
    if issubclass(category, GenbenchWarning):
        click.secho(f"Warning: {message}", fg="yellow", err=True)
    else:
        _default_showwarning(message, category, filename, lineno, file, line)


@main.command("list")
@click.argument("what", required=False,
                type=click.Choice(["models", "datasets", "protocols", "metrics", "extractors"]))
@_friendly_errors
def list_(what: str | None) -> None:
    """List what genbench knows: models, datasets, protocols, metrics and feature extractors (all by default)."""
    from genbench import registry

    sections = [what] if what else ["models", "datasets", "protocols", "metrics", "extractors"]
    for section in sections:
        click.secho(section, bold=True)
        if section == "models":
            rows = [(n, f.description, "capabilities: " + ", ".join(f.capabilities()) +
                     "; presets: " + ", ".join(f.presets)) for n, f in registry.MODELS.items()]
        elif section == "datasets":
            rows = [(n, s.description, _dataset_facts(s)) for n, s in registry.DATASETS.items()]
            rows.append(("folder:PATH", "your own images, found recursively under PATH", "split: all"))
        elif section == "protocols":
            rows = [(ref, f"{p.steps} steps x {p.batch_size}, preset {p.preset}", p.hash)
                    for ref, p in registry.PROTOCOLS.items()]
        elif section == "metrics":
            rows = [(n, m.description, ("higher" if m.higher_is_better else "lower") + " is better; needs "
                     + m.requires) for n, m in registry.METRICS.items()]
        else:
            rows = [(n, e.description, f"{e.feature_dim}-d features" + (f", {e.num_classes} logits" if e.num_classes
                     else "") + f"; input: {e.input}") for n, e in registry.EXTRACTORS.items()]
        width = max(len(r[0]) for r in rows)
        for name, desc, extra in rows:
            click.echo(f"  {name:<{width}}  {desc}")
            click.secho(f"  {'':<{width}}  {extra}", dim=True)
        click.echo()


def _dataset_facts(spec) -> str:
    shape = "x".join(map(str, spec.shape)) if spec.shape else "any size"
    return f"{shape}; splits: {', '.join(spec.splits)}" + (f"; labels: {spec.label_kind}" if spec.label_kind else "")


@main.command()
@click.option("--model", required=True, help="Model family (see `genbench list models`).")
@click.option("--dataset", required=True, help="Dataset (see `genbench list datasets`).")
@click.option("--protocol", "protocol_name", default="standard", show_default=True,
              help="Tier (smoke: seconds on a CPU; quick: ~10 min on a laptop CPU; standard: the published "
                   "recipe, GPU hours) or a full protocol name such as fashion-mnist/vae/quick@2.")
@click.option("--seed", default=0, show_default=True, help="Seed for initialisation, data order and sampling.")
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Run directory.  [default: runs/DATASET-MODEL-TIER-vVERSION-seedSEED]")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]),
              help="auto picks CUDA when torch sees a GPU.")
@click.option("--data-root", type=click.Path(path_type=Path), default=None, envvar="GENBENCH_DATA",
              help="Where datasets are looked for first (also $GENBENCH_DATA).")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out (same protocol and seed); "
                                             "reaches the same result as an uninterrupted run.")
@click.option("--force", is_flag=True, help="Replace a run already in --out.")
@click.option("--max-minutes", type=float, default=None,
              help="Stop training after this many minutes with a checkpoint; continue later with --resume.")
@click.option("--offline", is_flag=True, help="Never download; fail with instructions if data is missing.")
@click.option("--no-progress", is_flag=True, help="No progress bars (logs still written).")
@click.option("--dry-run", is_flag=True, help="Print the resolved protocol and run directory, then exit.")
@click.option("--nproc", default=1, show_default=True,
              help="Data-parallel processes on this machine: the same command under `torchrun --nproc_per_node N`.")
@_friendly_errors
def run(model, dataset, protocol_name, seed, out, device, data_root, resume, force, max_minutes, offline,
        no_progress, dry_run, nproc) -> None:
    """Train a baseline under a fixed protocol, then evaluate its saved weights into RUN_DIR/result.json.

    Interrupt with Ctrl-C at any time: the current step finishes, a checkpoint is written, and --resume
    continues exactly where it stopped.
    """
    from genbench import registry, runner

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        sys.exit(_under_torchrun(nproc))
    protocol = _resolve_protocol(registry, model, dataset, protocol_name)
    out = out or Path("runs") / f"{protocol.dataset}-{protocol.model}-{protocol.tier}-v{protocol.version}-seed{seed}"
    if dry_run:
        click.echo(json.dumps({**protocol.summary(), "seed": seed, "run_dir": str(out)}, indent=2))
        return
    main_rank = _quiet_unless_main_rank()
    if main_rank:
        _print_protocol(protocol, seed, out)
    opts = runner.RunOptions(out=out, seed=seed, device=device, data_root=data_root, resume=resume, force=force,
                             max_minutes=max_minutes, progress=not no_progress,
                             download=not offline)
    result = runner.run(protocol, opts, echo=click.echo if main_rank else lambda _: None)
    if result is None:
        sys.exit(3)
    if not result:  # a rank other than 0: its share of training is done
        return
    click.echo()
    _print_metrics(result)


def _quiet_unless_main_rank() -> bool:
    """Whether this is rank 0 under torchrun (or no torchrun); the other ranks' warnings are rank 0's too."""
    main_rank = int(os.environ.get("RANK", 0)) == 0
    if not main_rank:
        warnings.simplefilter("ignore", GenbenchWarning)
    return main_rank


def _under_torchrun(nproc: int) -> int:
    """This command (`genbench run` or `score`) again, without --nproc, as N processes under torchrun; its exit
    status."""
    import subprocess

    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip or arg == "--nproc" or arg.startswith("--nproc="):
            skip = arg == "--nproc"
            continue
        args.append(arg)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
           "-m", "genbench", *args]
    return subprocess.call(cmd)


def _resolve_protocol(registry, model: str, dataset: str, name: str):
    from genbench.protocols import TIERS

    if name in TIERS:
        return registry.find_protocol(model=model, dataset=dataset, tier=name)
    protocol = registry.protocol(name)
    if (protocol.model, protocol.dataset) != (model, dataset):
        raise GenbenchError(f"protocol {protocol.ref} trains {protocol.model} on {protocol.dataset}, "
                            f"not {model} on {dataset}.")
    return protocol


def _print_protocol(protocol, seed: int, out: Path) -> None:
    ev = protocol.evaluation
    click.secho(f"{protocol.ref}  ({protocol.hash})", bold=True)
    click.echo(f"  model     {protocol.model}, preset {protocol.preset}: {protocol.model_config}")
    click.echo(f"  training  {protocol.steps} steps x batch {protocol.batch_size} on {protocol.dataset}:"
               f"{protocol.train_split}, {protocol.optimizer.name} lr {protocol.optimizer.lr:g}"
               + (f", EMA {protocol.ema}" if protocol.ema else "") + f", seed {seed}")
    click.echo(f"  eval      {protocol.dataset}:{ev.split}"
               + (f" (first {ev.num_images})" if ev.num_images else " (all)")
               + (f", IWAE k={ev.iwae_k} on {ev.iwae_images}" if ev.iwae_k else "")
               + (f", {ev.translation_images} images of each domain translated" if protocol.domains else
                  f", {ev.num_samples} samples"))
    click.echo(f"  run dir   {out}")


def _print_metrics(result: dict) -> None:
    rows = [(name, m) for name, m in result["metrics"].items()]
    rows += [(f"{name} (reference)", m) for name, m in result.get("references", {}).items()]
    width = max((len(n) for n, _ in rows), default=10)
    for name, m in rows:
        arrow = "↑" if m["higher_is_better"] else "↓"
        value = "—" if m["value"] is None else f"{m['value']:.4f}"
        details = ", ".join(f"{k}={v}" for k, v in m.items()
                            if k in ("n", "split", "estimator", "k", "unit") and v is not None)
        click.echo(f"  {name:<{width}} {arrow} {value:>10}   {details}")
    c = result["compute"]
    if c.get("train_seconds") is not None:
        speed = c.get("sample_images_per_s")
        click.echo(f"  trained {c['train_seconds']:.1f} s on {c['device']}; {c['parameters']:,} parameters"
                   + (f"; sampling {speed:.0f} images/s" if speed is not None else ""))


@main.command()
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@_friendly_errors
def show(run_dir: Path) -> None:
    """Summarise a run directory: protocol, progress, losses, and the metrics once evaluated."""
    from genbench import results
    from genbench.rundir import RunDir

    rd = RunDir(run_dir)
    if not rd.run_json.exists():
        raise GenbenchError(f"{run_dir} holds no genbench run (no run.json).")
    info = rd.info()
    p = info["protocol"]
    click.secho(f"{run_dir}: {rd.status()}", bold=True)
    click.echo(f"  protocol  {p['protocol']} ({p['hash']}), seed {info['seed']}, run id {info['run_id']}")
    click.echo(f"  created   {info['created']} with genbench {info['genbench_version']}")
    train_log, eval_log = rd.logs.read("train"), rd.logs.read("eval")
    if train_log:
        last = train_log[-1]
        click.echo(f"  training  step {last['step']}/{p['steps']}: loss {last['loss']:.4g}"
                   + (f", bpd {last['bpd']:.4f}" if "bpd" in last else "")
                   + f", {last['images_per_s']:.0f} images/s, {last['train_seconds']:.0f} s so far")
    if eval_log:
        last = eval_log[-1]
        click.echo(f"  held-out  step {last['step']}: loss {last['loss']:.4g}"
                   + (f", bpd {last['bpd']:.4f}" if "bpd" in last else ""))
    if rd.result.exists():
        click.echo()
        _print_metrics(results.load(rd.result))
    elif not rd.weights.exists():
        click.echo(f"  continue with: genbench run --model {p['model']} --dataset {p['dataset']} "
                   f"--protocol {p['protocol']} --seed {info['seed']} --out {run_dir} --resume")
    files = [f.name for f in sorted(rd.path.iterdir()) if f.is_file() and not f.name.startswith(".")]
    click.echo(f"  files     {', '.join(files)}")


@main.command("sampler-steps")
@click.argument("run_dir", type=click.Path(path_type=Path, exists=True, file_okay=False))
@click.option("--steps", default="10,20,50,100,1000", show_default=True,
              help="Comma-separated numbers of DDIM steps S (eta from the model's configuration; S = T is DDIM "
                   "over every timestep, not ancestral sampling).")
@click.option("--num-samples", type=click.IntRange(min=2), default=2000, show_default=True,
              help="Samples per point (the same generator seed, so the same starting noise, at every point).")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--data-root", type=click.Path(path_type=Path), default=None, envvar="GENBENCH_DATA")
@click.option("--offline", is_flag=True, help="Never download; fail with instructions if data is missing.")
@click.option("--no-progress", is_flag=True)
@_friendly_errors
def sampler_steps(run_dir, steps, num_samples, device, data_root, offline, no_progress) -> None:
    """FID against the number of sampling steps for a trained diffusion run (DDIM's speed-quality trade-off).

    Writes RUN_DIR/sampler_steps.json (the curve, with how it was made and the code that made it) and
    RUN_DIR/sampler-steps.png / .svg; result.json is not touched.
    """
    from genbench import curves, evaluate, registry, results
    from genbench.device import resolve_device
    from genbench.files import sha256_file, write_json
    from genbench.report.plots import save
    from genbench.report.run_plots import sampler_steps_plot
    from genbench.rundir import RunDir

    rd = RunDir(run_dir)
    if not rd.weights.exists():
        raise GenbenchError(f"{run_dir} holds no trained weights ({rd.weights.name}); finish the run first.")
    try:
        counts = tuple(int(v) for v in steps.split(","))
    except ValueError:
        counts = ()
    if not counts or min(counts) < 1:
        raise GenbenchError(f"--steps takes comma-separated whole numbers >= 1, got {steps!r}")
    info = rd.info()
    protocol = registry.protocol(info["protocol"]["protocol"])
    if protocol.hash != info["protocol"]["hash"]:
        raise GenbenchError(f"{run_dir} was made under {protocol.ref} with hash {info['protocol']['hash']}, but "
                            f"this genbench defines it as {protocol.hash}; use the genbench that made the run.")
    spec = registry.dataset(protocol.dataset)
    load = dict(data_root=data_root, download=not offline, progress=not no_progress)
    dev = resolve_device(device)
    ctx = evaluate.open_context(rd, protocol, train=spec.load(protocol.train_split, **load),
                                held_out=spec.load(protocol.evaluation.split, **load), device=dev,
                                progress=not no_progress)
    section = curves.sampler_steps_curve(ctx, counts, num_samples)
    write_json(rd.path / "sampler_steps.json", {"schema": results.SCHEMA, "kind": "sampler steps",
                                                "run_id": info["run_id"], "protocol": info["protocol"],
                                                "created": results.now(), "sampler_steps": section,
                                                "provenance": results.provenance(
                                                    data_hash={ctx.train.split: ctx.train.content_hash},
                                                    checkpoint_sha256=sha256_file(rd.weights))})
    paths = save(sampler_steps_plot(section, title=f"{protocol.model} on {protocol.dataset}: sample quality "
                                                   "against sampling steps"), rd.path / "sampler-steps")
    for p in section["curve"]:
        click.echo(f"  {p['steps']:>5} steps  {section['metrics'][0]} {p[section['metrics'][0]]:.2f}  "
                   f"{p['images_per_s']:.1f} images/s")
    click.echo(f"Written: {rd.path / 'sampler_steps.json'}, {', '.join(str(p) for p in paths)}")


@main.command(epilog="Sample files: " + SIZE_AND_CHANNEL_POLICY)
@click.argument("samples")
@click.option("--ref", required=True,
              help="What to compare with: DATASET:SPLIT (e.g. fashion-mnist:test), a folder or .npy/.npz of images, "
                   "or a .npz of Fréchet statistics (mu, sigma; FID only).")
@click.option("--metrics", "metric_list", default="fid,kid,is,prc", show_default=True,
              help="Comma-separated: fid, kid, is (Inception Score), prc (precision and recall, k=3), "
                   "dc (density and coverage, k=5), modes (classes covered and the KL from the reference's "
                   "class frequencies, by the extractor's classifier).")
@click.option("--extractor", default="inception-v3-compat", show_default=True,
              help="Feature extractor (see `genbench list extractors`). Scores from any extractor but "
                   "inception-v3-compat are named after it, e.g. fid[lenet-fashion-mnist].")
@click.option("--weights", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Extractor weights file (sha256-checked). For Inception also $GENBENCH_INCEPTION_WEIGHTS.")
@click.option("--num-samples", type=int, default=None, help="Score the first N samples (sorted by path).")
@click.option("--batch-size", type=int, default=64, show_default=True, help="Does not change the numbers.")
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--data-root", type=click.Path(path_type=Path), default=None, envvar="GENBENCH_DATA",
              help="Where reference datasets are looked for first (also $GENBENCH_DATA).")
@click.option("--strict", is_flag=True, help="Fail on unreadable sample files instead of skipping them.")
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the result (genbench result schema) to this file.")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--nproc", default=1, show_default=True,
              help="Processes sharing the feature extraction (`torchrun --nproc_per_node N`): each takes whole "
                   "batches, and the scores are one process's.")
@_friendly_errors
def score(samples, ref, metric_list, extractor, weights, num_samples, batch_size, device, data_root, strict,
          json_out, no_progress, nproc) -> None:
    """Score a folder (or .npy/.npz array) of generated images against a reference.

    SAMPLES may also be DATASET:SPLIT (e.g. fashion-mnist:test): real held-out images scored like samples,
    which shows the floor a model's scores can reach with as many samples.
    """
    from genbench import results
    from genbench import score as scoring
    from genbench.device import resolve_device

    if nproc > 1 and "WORLD_SIZE" not in os.environ:
        sys.exit(_under_torchrun(nproc))
    _quiet_unless_main_rank()

    settings = scoring.ScoreSettings(
        metrics=tuple(m.strip() for m in metric_list.split(",") if m.strip()), extractor=extractor,
        weights=weights, num_samples=num_samples, batch_size=batch_size, device=str(resolve_device(device)),
        strict=strict, data_root=data_root, progress=not no_progress)
    result = scoring.score(samples, ref, settings)
    if not result:  # a rank other than 0: its share is extracted
        return
    _print_metrics(result)
    if json_out:
        results.write_file(json_out, result)
        click.echo(f"Result written to {json_out}.")


@main.command()
@click.argument("ref")
@click.option("--extractor", default="inception-v3-compat", show_default=True,
              help="Feature extractor (see `genbench list extractors`).")
@click.option("--weights", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Extractor weights file (sha256-checked).")
@click.option("--batch-size", type=int, default=64, show_default=True)
@click.option("--device", default="auto", show_default=True, type=click.Choice(["auto", "cpu", "cuda"]))
@click.option("--data-root", type=click.Path(path_type=Path), default=None, envvar="GENBENCH_DATA")
@click.option("--no-progress", is_flag=True)
@_friendly_errors
def stats(ref, extractor, weights, batch_size, device, data_root, no_progress) -> None:
    """Precompute and cache the reference features and statistics of DATASET:SPLIT (or a folder of images).

    `genbench score` and `genbench run` reuse the cache; it is keyed by the data's content hash, the extractor,
    its weights' sha256, the preprocessing and genbench's feature-pipeline version.
    """
    from genbench import reference, registry
    from genbench.device import resolve_device

    spec = registry.EXTRACTORS[extractor]
    dev = str(resolve_device(device))
    module = spec.load(weights, device=dev)
    ref_obj = reference.resolve(ref, extractor=spec, module=module, data_root=data_root, batch_size=batch_size,
                                device=dev, progress=not no_progress)
    click.echo(f"{ref_obj.label}: {ref_obj.n} images, {len(ref_obj.mu)}-d {spec.name} features")
    click.echo(f"  cached at {ref_obj.path}")


@main.group()
def extractor() -> None:
    """Domain feature extractors that genbench trains itself (offline alternatives to Inception)."""


@extractor.command("train")
@click.option("--dataset", default="fashion-mnist", show_default=True,
              type=click.Choice(["fashion-mnist", "dsprites-shapes"]),
              help="fashion-mnist: lenet-fashion-mnist, 10 clothing classes, 28x28; dsprites-shapes: "
                   "lenet-dsprites-shapes, 3 shapes (square, ellipse, heart), 64x64.")
@click.option("--out", type=click.Path(path_type=Path, file_okay=False), default=Path("extractor"),
              show_default=True, help="Folder for the weights and their record (sha256, test accuracy).")
@click.option("--seed", default=0, show_default=True)
@click.option("--data-root", type=click.Path(path_type=Path), default=None, envvar="GENBENCH_DATA")
@_friendly_errors
def extractor_train(dataset, out, seed, data_root) -> None:
    """Train a domain classifier with genbench's fixed recipe; reproduces the weights shipped in the package."""
    from genbench.metrics.domain import train_extractor

    record = train_extractor(dataset=dataset, out=out, seed=seed, data_root=data_root)
    click.echo(json.dumps(record, indent=2))


@main.command(epilog="Seeds of one entry under one protocol version are aggregated to mean ± std (n = seeds). "
                     "Numbers made differently (sample count, reference split, extractor or its weights) are "
                     "never put in one column; the report says which columns were kept apart and why.")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "fmt", default="md", show_default=True, type=click.Choice(["md", "csv", "latex", "html"]),
              help="md pastes into a README, latex (booktabs) into a paper.")
@click.option("--out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the report to this file instead of printing it.")
@click.option("--ci", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=None,
              help="Add a bootstrap confidence interval of the mean across seeds at this level, e.g. 0.95.")
@click.option("--metrics", "metric_list", default=None,
              help="Comma-separated metrics to show (e.g. bpd,fid); default: all.")
@click.option("--plots", "plots_dir", type=click.Path(path_type=Path, file_okay=False), default=None,
              help="Also draw, into this folder, sample quality over training (from the results' snapshot "
                   "curves) and the loss terms of runs whose train_log.jsonl lies beside their result.")
@click.option("--min-seeds", type=click.IntRange(1), default=None,
              help="Only entries with at least this many seeds (and the reference rows): e.g. a board's "
                   "entries run over all three of their protocol's seeds.")
@_friendly_errors
def report(paths, fmt, out, ci, metric_list, plots_dir, min_seeds) -> None:
    """Comparison tables from run directories, result files, or folders that hold them."""
    from genbench.files import atomic_write
    from genbench.report import entries, run_plots, tables

    metrics = [m.strip() for m in metric_list.split(",") if m.strip()] if metric_list else None
    text = tables.report(paths, fmt=fmt, ci=ci, metrics=metrics, min_seeds=min_seeds)
    if out is None:
        click.echo(text)
    else:
        atomic_write(out, lambda f: f.write(text.encode()))
        click.echo(f"Report written to {out}.")
    if plots_dir is not None:
        written = run_plots.draw_runs(entries.load_results(paths), plots_dir)
        click.echo(f"{len(written)} plot files written to {plots_dir}" if written else
                   "No plots: none of the results holds a snapshot curve or lies beside a training log.", err=True)


@main.group()
def leaderboard() -> None:
    """Published leaderboards: a folder of result files rendered to README.md and a static index.html."""


@leaderboard.command("build")
@click.argument("board_dir", type=click.Path(path_type=Path, file_okay=False))
@click.option("--no-plots", is_flag=True, help="Tables and page only (plots take a few seconds per metric).")
@_friendly_errors
def leaderboard_build(board_dir, no_plots) -> None:
    """Render BOARD_DIR/README.md, BOARD_DIR/index.html and the plots from BOARD_DIR/results/.

    The page is one static file with no external resources: open it from disk. Rebuilding from the same
    results gives byte-identical files.
    """
    from genbench.report import leaderboard as board

    for path in board.build(board_dir, plots=not no_plots):
        click.echo(f"wrote {path}")


@leaderboard.command("submit")
@click.argument("result", type=click.Path(path_type=Path))
@click.option("--board", "board_dir", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="The leaderboard folder (its results/ receives the file).")
@_friendly_errors
def leaderboard_submit(result, board_dir) -> None:
    """Validate a result (schema, current protocol, checksums, metrics) and add it to a board atomically.

    RESULT is a result file or a run directory. Rebuild the board afterwards with `genbench leaderboard build`.
    """
    from genbench.report import leaderboard as board

    click.echo(f"added {board.submit(result, board_dir)}; run `genbench leaderboard build {board_dir}` to render it.")


@main.command("evaluate-representation")
@click.argument("codes", type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--json", "json_out", type=click.Path(path_type=Path, dir_okay=False), default=None,
              help="Write the scores to this file (JSON).")
@click.option("--seed", default=0, show_default=True, help="Seed of the scores' own random draws.")
@_friendly_errors
def evaluate_representation(codes, json_out, seed) -> None:
    """Disentanglement scores of a representation given as arrays.

    \b
    CODES.npz holds `codes` (N, D) float and `factors` (N, F) integer classes, and optionally `codes_test` /
    `factors_test`, used by the scores that fit a predictor (DCI, SAP, Explicitness). Computes MIG, DCI, SAP,
    Modularity and Explicitness with disentanglement_lib's settings; the BetaVAE and FactorVAE scores need a
    model (they draw new observations with one factor held fixed), so `genbench run` computes those.
    """
    from genbench import results
    from genbench.represent import result_for_codes

    result = result_for_codes(codes, seed=seed)
    _print_metrics(result)
    click.echo("Not computed (they need the model): " + "; ".join(
        f"{name}: {why}" for name, why in result["not_computed"].items()))
    if json_out:
        results.write_file(json_out, result)
        click.echo(f"Result written to {json_out}.")


from genbench import cli_sweep  # noqa: E402,F401  (registers `genbench sweep` on main)
