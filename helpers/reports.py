"""What the notebook asks of the trained model: the shipped one or a retrain, and what to say
about it (its final test numbers, where it came from, how it compares with the shipped one)."""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from pathlib import Path

import torch

from helpers import checkpoints
from helpers.checkpoints import CheckpointError, MismatchError
from helpers.data import MNIST, check_dataset
from helpers.train import (
    Config,
    checkpoint_path,
    load_trained,
    model_from_state,
    retrain_path,
    train,
)
from helpers.vae import LOSS_NAMES, VAE, layer_summary, neg_elbo_nats, parameter_count


def load_or_train(config: Config = Config(), *, retrain: bool = False,
                  **kwargs) -> tuple[VAE, dict, Path]:
    """The shipped checkpoint for ``config``, or a retrain: (model on the CPU in eval mode,
    state, its file).

    ``retrain=False`` never trains: a missing or mismatched shipped checkpoint is a
    CheckpointError saying how to get one. ``retrain=True`` trains (``kwargs`` go to ``train``)
    into, or on from, ``retrain_path(config)``, never the shipped file.
    """
    if retrain:
        out = retrain_path(config)
        model, state = train(config, out=out, resume=True, **kwargs)
        return _to_cpu(model), state, out
    shipped = checkpoint_path(config)
    if not shipped.exists():
        raise CheckpointError(f"no shipped checkpoint for this config: looked for {shipped}. "
                              + how_to_ship(config))
    try:
        state = load_trained(shipped, config)
    except MismatchError as e:  # the generic fix gives way to the two ways to a model
        extra = "" if e.fix == checkpoints.GENERIC_FIX else f"{e.fix} "
        raise MismatchError(e.what, extra + how_to_ship(config), e.diff) from None
    if state["meta"]["epochs_done"] < config.epochs:
        raise CheckpointError(f"{shipped} holds {state['meta']['epochs_done']} of "
                              f"{config.epochs} epochs; restore the shipped file with "
                              f"`git checkout -- {shipped}`, or retrain.")
    return model_from_state(state), state, shipped


def how_to_ship(config: Config) -> str:
    """The two ways to a model for ``config`` when no shipped checkpoint fits it."""
    flags = config.flags()
    command = f"python -m helpers.train {flags}" if flags else "make train"
    also = "" if flags else " or `python -m helpers.train`"
    out = retrain_path(config)
    return (f"Either train it with `{command}`{also} (into {out}) and copy the finished file to "
            f"{checkpoint_path(config)}, or set RETRAIN = True in the notebook to train it there.")


def _to_cpu(model: VAE) -> VAE:
    """The trained model on the CPU in the default memory layout, as ``model_from_state`` gives."""
    return model.cpu().to(memory_format=torch.contiguous_format).eval()


def final_test(state: dict) -> dict[str, float]:
    """The final test numbers: -ELBO, reconstruction, KL and the Gaussian -ELBO in nats."""
    final = dict(zip(LOSS_NAMES, (float(v) for v in state["history"]["test"][-1]), strict=True))
    final["-ELBO in nats"] = neg_elbo_nats(final["reconstruction"], final["KL"])
    return final


def overview(model: VAE, state: dict, path: Path, data: MNIST,
             config: Config = Config()) -> str:
    """The model's layers, how its weights were trained, and, for a model
    other than the shipped one, ``compare_with_shipped``. Images of another dataset than the
    model's are refused here, before anything is scored on them."""
    check_dataset(getattr(model, "dataset", None), data)
    nets = [f"{name}, {parameter_count(net):,} parameters:\n{layer_summary(net)}"
            for name, net in (("encoder", model.encoder), ("decoder", model.decoder))]
    comparison = compare_with_shipped(state, path, config)
    return "\n".join([*nets, describe(state), *([comparison] if comparison else [])])


def describe(state: dict) -> str:
    """One line on how a checkpoint's weights were trained, from its stored config: optimiser
    settings, epochs, seed, warm-up, arithmetic."""
    config, meta = Config.from_stored(state["config"]), state["meta"]
    arithmetic = {"bf16": "bfloat16", "fp32": "float32"}[config.precision]
    warmup = f", {config.warmup}-step warm-up" if config.warmup else ""
    return (f"trained {meta['epochs_done']} epochs: Adam, learning rate {config.lr:g}, batch "
            f"{config.batch_size}, seed {config.seed}{warmup}, {arithmetic}")


def compare_with_shipped(state: dict, path: Path, config: Config = Config()) -> str:
    """Nothing when ``state`` (loaded from ``path``) is the shipped model the text describes;
    otherwise a warning and the two final test results side by side. The shipped file is read
    only then."""
    shipped = checkpoint_path(config)
    mine = final_test(state)
    if Path(path).resolve() == shipped.resolve():
        return ""
    if shipped.exists():
        theirs = final_test(load_trained(shipped, config))
    else:
        theirs = dict.fromkeys(mine, float("nan"))
    rows = [f"{'final test':<22}{'this model':>12}{'shipped':>12}"]
    rows += [f"{k:<22}{mine[k]:12.2f}{theirs[k]:12.2f}" for k in mine]
    return ("This is a retrained model. The text below quotes the shipped run; this model's "
            "numbers are in the outputs.\n" + "\n".join(rows))


def epoch_table(test: torch.Tensor, epochs: tuple[int, ...]) -> str:
    """The recorded test [-ELBO, recon, KL] after each of ``epochs`` (0: at initialisation)."""
    lines = ["test set      " + "".join(f"{f'epoch {e}':>9}" for e in epochs)]
    for i, name in enumerate(LOSS_NAMES):
        lines.append(f"{name:<14}" + "".join(f"{test[e, i]:9.2f}" for e in epochs))
    return "\n".join(lines)


def source(*functions: Callable) -> str:
    """The code of ``functions`` without their docstrings, a blank line between them."""
    return "\n\n".join(_without_docstring(textwrap.dedent(inspect.getsource(f)))
                       for f in functions)


def _without_docstring(code: str) -> str:
    """``code``, one function's source, less its docstring: the printed model reads as code."""
    lines = code.rstrip().splitlines()
    (node,) = ast.parse(code).body
    first = node.body[0]
    if ast.get_docstring(node) is not None:
        del lines[first.lineno - 1:first.end_lineno]
    return "\n".join(lines)
