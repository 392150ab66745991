"""Training: the loss falls, checkpoints round-trip, resume is exact, bad states are refused."""

from __future__ import annotations

import dataclasses
import stat
import time

import pytest
import torch

from helpers import checkpoints, data, devices, reports, study, train
from helpers.checkpoints import CheckpointError, load_checkpoint
from helpers.data import MNIST
from helpers.files import current_umask
from helpers.train import Config, NonFiniteLossError
from tools import restamp
from tools import study as study_tool


def _train(small, tmp_path, name="ckpt.pt", epochs=1, **kwargs):
    # fp32 whatever the machine: these tests compare arithmetic exactly.
    return train.train(Config(epochs=epochs, precision="fp32"), out=tmp_path / name, data=small,
                       device="cpu", progress=False, **kwargs)


@pytest.fixture(scope="module")
def trained(small, tmp_path_factory):
    """A 1-epoch fp32 checkpoint of ``small``, written by ``_train`` once for the module."""
    folder = tmp_path_factory.mktemp("trained")
    _train(small, folder)
    return folder / "ckpt.pt"


def _copy(trained, tmp_path):
    """A copy of that checkpoint at tmp_path/ckpt.pt (for tests that change or continue it)."""
    path = tmp_path / "ckpt.pt"
    path.write_bytes(trained.read_bytes())
    return path


def stub_data(monkeypatch, small):
    """Whatever dataset is asked of the one dispatch, ``data.load_data``, give ``small`` under
    its name: no test trains on the full data, whatever ``Config.dataset``'s default."""
    monkeypatch.setattr(data, "load_data",
                        lambda name, **_: dataclasses.replace(small, dataset=name))


def _shipped_and_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIR", tmp_path / "checkpoints")
    monkeypatch.setattr(checkpoints, "RUNS_DIR", tmp_path / "runs")


@pytest.mark.slow
def test_loss_falls_within_a_few_steps(small):
    torch.manual_seed(0)
    model = train.VAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    x = small.train_x[:128]
    first = train.train_step(model, optimizer, x)
    for _ in range(19):
        last = train.train_step(model, optimizer, x)
    assert last[0] < 0.75 * first[0]  # -ELBO at least 25% lower after 20 Adam steps


def test_history_layout_and_checkpoint_round_trip(small, tmp_path):
    model, state = _train(small, tmp_path, epochs=2)
    steps = -(-len(small.train_x) // 128)
    assert state["history"]["train"].shape == (2 * steps, 3)
    assert state["history"]["test"].shape == (3, 3)  # initialisation + 2 epochs
    h = state["history"]["train"]
    assert torch.allclose(h[:, 0], h[:, 1] + h[:, 2], rtol=1e-5)
    loaded = train.load_trained(tmp_path / "ckpt.pt", Config(epochs=2))
    rebuilt = train.model_from_state(loaded)
    for (k, a), (_, b) in zip(model.state_dict().items(), rebuilt.state_dict().items(),
                              strict=True):
        assert torch.equal(a, b), k
    assert loaded["meta"]["epochs_done"] == 2 and loaded["config"]["lr"] == 1e-3
    x = small.test_x[:4]
    assert torch.allclose(model.reconstruct(x), rebuilt.reconstruct(x), atol=1e-6)


def test_evaluate_matches_the_mean_of_per_image_losses(small, monkeypatch):
    torch.manual_seed(0)
    model = train.VAE().eval()
    x = small.test_x[:100]
    monkeypatch.setattr(torch, "randn_like", torch.zeros_like)  # z = mu: no noise to match
    per_image = torch.stack([train.losses(model, x[i:i + 1]) for i in range(len(x))])
    expected = per_image.double().mean(0).float()  # one image at a time, then their mean
    whole = train.evaluate(model, x, batch_size=7)  # 14 batches of 7 and one of 2
    assert torch.allclose(whole, expected, rtol=1e-5)
    assert whole[0].item() == pytest.approx((whole[1] + whole[2]).item(), rel=1e-5)


@pytest.mark.slow
def test_resume_gives_the_same_history_as_an_uninterrupted_run(small, tmp_path):
    _, full = _train(small, tmp_path, "full.pt", epochs=2, fast=False)
    _train(small, tmp_path, "split.pt", epochs=1, fast=False)
    _, resumed = _train(small, tmp_path, "split.pt", epochs=2, fast=False, resume=True)
    for key in ("train", "test"):
        assert torch.equal(full["history"][key], resumed["history"][key]), key
    for k, v in full["model"].items():
        assert torch.equal(v, resumed["model"][k]), k


@pytest.mark.slow
def test_channels_last_does_not_change_the_math(small, tmp_path):
    _, plain = _train(small, tmp_path, "plain.pt", fast=False)
    _, fast = _train(small, tmp_path, "fast.pt", fast=True)
    # Same seed, same losses up to float rounding (which later Adam steps amplify a little).
    assert torch.allclose(plain["history"]["train"], fast["history"]["train"], rtol=1e-3)
    assert torch.allclose(plain["history"]["test"], fast["history"]["test"], rtol=1e-2)


def test_mismatched_config_is_an_error(small, trained, tmp_path):
    _copy(trained, tmp_path)
    with pytest.raises(CheckpointError, match="lr: checkpoint 0.001 vs requested 0.01"):
        train.load_trained(tmp_path / "ckpt.pt", Config(epochs=1, lr=1e-2))
    with pytest.raises(CheckpointError, match="another config"):
        train.train(Config(epochs=2, seed=1), out=tmp_path / "ckpt.pt", data=small,
                    device="cpu", progress=False, resume=True)


def test_damaged_checkpoint_is_an_error(trained, tmp_path):
    path = _copy(trained, tmp_path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="damaged"):
        load_checkpoint(path)


def test_foreign_file_is_an_error(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(3)}, path)
    with pytest.raises(CheckpointError, match="not a helpers.train checkpoint"):
        load_checkpoint(path)


def test_a_bare_tensor_file_is_an_error(tmp_path):
    path = tmp_path / "tensor.pt"
    torch.save(torch.zeros(3), path)
    with pytest.raises(CheckpointError, match="not a helpers.train checkpoint"):
        load_checkpoint(path)


def test_missing_checkpoint_is_an_error(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_checkpoint(tmp_path / "absent.pt")


def test_weights_that_do_not_fit_are_an_error(trained):
    state = load_checkpoint(trained)
    state["model"]["encoder.0.weight"] = torch.zeros(32, 3, 3, 3)
    with pytest.raises(CheckpointError, match="do not fit"):
        train.model_from_state(state)


def test_nan_loss_stops_training_and_keeps_the_last_good_checkpoint(small, trained, tmp_path):
    path = _copy(trained, tmp_path)
    good = path.read_bytes()
    poisoned = dataclasses.replace(small, train_x=small.train_x * 1e30)  # finite data, inf loss
    with pytest.raises(NonFiniteLossError, match="last good checkpoint"):
        train.train(Config(epochs=2, precision="fp32"), out=path, data=poisoned, device="cpu",
                    progress=False, resume=True)
    assert path.read_bytes() == good


def test_checkpoint_writes_are_atomic(trained):
    assert sorted(p.name for p in trained.parent.iterdir()) == ["ckpt.pt"]  # no temporary left


def test_load_or_train_refuses_a_partial_shipped_checkpoint(small, tmp_path, monkeypatch):
    _shipped_and_runs(tmp_path, monkeypatch)
    path = train.checkpoint_path(Config(epochs=2))
    _, state = train.train(Config(epochs=1), out=path, data=small, device="cpu", progress=False)
    state["config"]["epochs"] = 2  # as if a 2-epoch run had stopped after its first epoch
    checkpoints.save_checkpoint(path, state)
    with pytest.raises(CheckpointError, match="holds 1 of 2 epochs.*git checkout"):
        reports.load_or_train(Config(epochs=2))


def test_cli_trains_and_prints_the_final_numbers(small, tmp_path, monkeypatch, capsys):
    stub_data(monkeypatch, small)
    out = tmp_path / "cli.pt"
    train.main(["--epochs", "1", "--device", "cpu", "--out", str(out)])
    printed = capsys.readouterr().out
    final = load_checkpoint(out)["history"]["test"][-1]
    assert f"Final -ELBO: {final[0]:.4f}, Recon Loss: {final[1]:.4f}" in printed
    before = out.read_bytes()
    train.main(["--epochs", "1", "--device", "cpu", "--out", str(out)])  # started again
    assert "continuing" in capsys.readouterr().out
    assert out.read_bytes() == before  # the finished run is handed back, not retrained


def test_cli_continues_an_interrupted_run(small, tmp_path, monkeypatch):
    stub_data(monkeypatch, small)
    out = tmp_path / "cli.pt"
    train.main(["--epochs", "1", "--device", "cpu", "--out", str(out)])
    first = load_checkpoint(out)["history"]["train"]
    train.main(["--epochs", "2", "--device", "cpu", "--out", str(out)])
    state = load_checkpoint(out)
    assert state["meta"]["epochs_done"] == 2
    assert torch.equal(state["history"]["train"][: len(first)], first)


def test_cli_refuses_fewer_epochs_than_the_checkpoint_holds(small, tmp_path, monkeypatch):
    stub_data(monkeypatch, small)
    out = tmp_path / "cli.pt"
    train.main(["--epochs", "2", "--device", "cpu", "--out", str(out)])
    before = out.read_bytes()
    with pytest.raises(SystemExit, match="already holds 2 epochs, more than the 1 requested"):
        train.main(["--epochs", "1", "--device", "cpu", "--out", str(out)])
    assert out.read_bytes() == before


def test_cli_never_writes_the_shipped_folder(small, tmp_path, monkeypatch):
    stub_data(monkeypatch, small)
    monkeypatch.setattr(checkpoints, "CHECKPOINT_DIR", tmp_path / "checkpoints")
    target = tmp_path / "checkpoints" / "vae.pt"
    with pytest.raises(SystemExit, match="holds the shipped models"):
        train.main(["--epochs", "1", "--device", "cpu", "--out", str(target)])
    assert not target.exists()


def test_a_retrain_never_writes_the_shipped_checkpoint(small, tmp_path, monkeypatch):
    _shipped_and_runs(tmp_path, monkeypatch)
    shipped = train.checkpoint_path(Config(epochs=1))
    train.train(Config(epochs=1), out=shipped, data=small, device="cpu", progress=False)
    before = shipped.read_bytes()
    _, state, path = reports.load_or_train(Config(epochs=1), retrain=True, data=small,
                                           device="cpu", progress=False)
    assert path == train.retrain_path(Config(epochs=1)) and path.exists()
    assert path.parent == tmp_path / "runs"
    assert shipped.read_bytes() == before
    _, loaded, again = reports.load_or_train(Config(epochs=1))  # RETRAIN = False: the shipped one
    assert again == shipped and loaded["history"]["train"].shape == state["history"]["train"].shape


def test_an_interrupted_retrain_continues_its_own_file(small, tmp_path, monkeypatch):
    _shipped_and_runs(tmp_path, monkeypatch)
    partial = train.retrain_path(Config(epochs=2))
    _, state = train.train(Config(epochs=1), out=partial, data=small, device="cpu",
                           progress=False)
    state["config"]["epochs"] = 2  # as if the 2-epoch retrain had stopped after epoch 1
    checkpoints.save_checkpoint(partial, state)
    _, resumed, path = reports.load_or_train(Config(epochs=2), retrain=True, data=small,
                                             device="cpu", progress=False)
    assert path == partial and resumed["meta"]["epochs_done"] == 2
    first = state["history"]["train"]
    assert torch.equal(resumed["history"]["train"][: len(first)], first)
    assert not train.checkpoint_path(Config(epochs=2)).exists()


def test_bad_data_is_refused_before_training(small, tmp_path):
    bad = MNIST(small.train_x[:, :, 2:30, 2:30], small.train_y, small.test_x, small.test_y)
    with pytest.raises(ValueError, match="shape"):
        _train(bad, tmp_path)


def test_resuming_a_finished_run_returns_it_unchanged(small, trained, tmp_path):
    done = load_checkpoint(trained)
    before = _copy(trained, tmp_path).read_bytes()
    _, again = _train(small, tmp_path, resume=True)
    assert torch.equal(again["history"]["train"], done["history"]["train"])
    assert (tmp_path / "ckpt.pt").read_bytes() == before


def test_zero_epochs_is_refused(small, tmp_path):
    with pytest.raises(ValueError, match="at least 1"):
        _train(small, tmp_path, epochs=0)


def test_a_checkpoint_of_the_other_parametrization_is_refused(trained):
    # The default: the encoder outputs log sigma.
    with pytest.raises(CheckpointError, match="scale: checkpoint 'log_sigma' vs requested 'logv"):
        train.load_trained(trained, Config(epochs=1, scale="logvar"))


def test_a_checkpoint_saved_before_a_field_existed_is_refused_until_restamped(small, tmp_path):
    _, state = train.train(Config(epochs=1, scale="logvar"), out=tmp_path / "old.pt", data=small,
                           device="cpu", progress=False)
    del state["config"]["scale"]  # as the first shipped checkpoint was written
    checkpoints.save_checkpoint(tmp_path / "old.pt", state)
    with pytest.raises(CheckpointError, match="records no scale.*tools.restamp .*old.pt scale="):
        train.load_trained(tmp_path / "old.pt", Config(epochs=1, scale="logvar"))
    restamp.main([str(tmp_path / "old.pt"), "scale=logvar"])  # what that run used
    with pytest.raises(CheckpointError, match="scale: checkpoint 'logvar'"):
        train.load_trained(tmp_path / "old.pt", Config(epochs=1))
    loaded = train.load_trained(tmp_path / "old.pt", Config(epochs=1, scale="logvar"))
    assert train.model_from_state(loaded).scale == "logvar"
    assert torch.equal(loaded["model"]["decoder.0.weight"], state["model"]["decoder.0.weight"])
    with pytest.raises(SystemExit, match="already records"):  # never overwrites a stored value
        restamp.main([str(tmp_path / "old.pt"), "scale=log_sigma"])


def test_the_tag_names_the_parametrization_and_the_warmup():
    assert Config(warmup=0).tag() == "z16-b128-lr0.001-e20-s0-log_sigma"
    assert Config(scale="logvar", warmup=0).tag().endswith("-logvar")
    assert Config(warmup=300).tag().endswith("-log_sigma-w300")


def test_histories_round_trip_without_weights(trained, tmp_path):
    state = load_checkpoint(trained)
    checkpoints.save_histories({"run": state}, tmp_path / "h.pt")
    runs = checkpoints.load_histories(tmp_path / "h.pt")
    assert set(runs) == {"run"} and set(runs["run"]) == {"history", "config", "meta"}
    assert torch.equal(runs["run"]["history"]["train"], state["history"]["train"])
    assert (tmp_path / "h.pt").stat().st_size < trained.stat().st_size / 10


@pytest.mark.parametrize("content", [b"not a torch file", None])
def test_a_bad_history_file_is_an_error(tmp_path, content):
    path = tmp_path / "h.pt"
    if content is None:
        torch.save({"run": {"history": {}}}, path)  # a dict, but not of whole runs
    else:
        path.write_bytes(content)
    with pytest.raises(CheckpointError, match="history"):
        checkpoints.load_histories(path)


def test_the_shipped_study_holds_both_recipes_on_eight_seeds():
    runs = checkpoints.load_histories(study.STUDY)
    recipes = study.load_study()
    assert set(recipes["plain fp32"]) == set(recipes["warmup200 fp32"]) == set(range(8))
    for name, run in runs.items():
        assert name == study_tool.run_name(Config.from_stored(run["config"]))
        assert run["history"]["test"].shape[0] >= 4  # initialisation + at least 3 epochs


def test_load_or_train_hands_back_a_cpu_model_in_eval_mode(small, tmp_path, monkeypatch):
    _shipped_and_runs(tmp_path, monkeypatch)
    model, _, _ = reports.load_or_train(Config(epochs=1), retrain=True, data=small,
                                        device="cpu", progress=False)
    assert model.device.type == "cpu" and not model.training
    assert model.encoder[0].weight.is_contiguous()  # the layout a loaded checkpoint has


def test_learning_rate_warms_up_linearly_then_stays():
    config = Config(lr=1e-3, warmup=4)
    assert [train.learning_rate(config, s) for s in range(6)] == pytest.approx(
        [2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    assert train.learning_rate(Config(warmup=0), 0) == 1e-3


def test_training_uses_the_warmed_up_rate(small, tmp_path, monkeypatch):
    seen = []  # the rate Adam holds at each step it takes
    original = train.train_step

    def spy(model, optimizer, x, precision="fp32"):
        seen.append(optimizer.param_groups[0]["lr"])
        return original(model, optimizer, x, precision)

    monkeypatch.setattr(train, "train_step", spy)
    train.train(Config(epochs=2, warmup=3), out=tmp_path / "w.pt", data=small, device="cpu",
                progress=False)
    # 256 images, batch 128: two steps an epoch; by hand, the warm-up goes on across epochs.
    assert seen == pytest.approx([1e-3 / 3, 2e-3 / 3, 1e-3, 1e-3])


@pytest.mark.parametrize(("flags", "expected"), [({"avx512_bf16"}, "bf16"), ({"amx_bf16"}, "bf16"),
                                                 ({"avx512f", "avx2"}, "fp32"), (set(), "fp32")])
def test_auto_precision_is_bf16_only_on_cpus_that_have_it(monkeypatch, flags, expected):
    monkeypatch.setattr(devices, "cpu_flags", lambda: flags)
    assert devices.pick_precision("auto", torch.device("cpu")) == expected
    assert devices.pick_precision("fp32", torch.device("cpu")) == "fp32"


def test_auto_precision_on_gpus_without_native_bf16_is_fp32(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: False)
    assert devices.pick_precision("auto", torch.device("cuda")) == "fp32"  # a T4, say
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: True)
    assert devices.pick_precision("auto", torch.device("cuda")) == "bf16"
    assert devices.pick_precision("auto", torch.device("mps")) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        devices.pick_precision("fp16", torch.device("cpu"))


@pytest.mark.slow
def test_bf16_training_records_its_precision_and_evaluates_in_fp32(small, tmp_path):
    model, state = train.train(Config(epochs=1, precision="bf16"), out=tmp_path / "b.pt",
                               data=small, device="cpu", progress=False)
    assert state["config"]["precision"] == "bf16"
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert torch.isfinite(state["history"]["train"]).all()
    # The stored test row is fp32 arithmetic on the trained weights: rerun it with its noise.
    torch.manual_seed(5)
    again = train.evaluate(model, small.test_x)
    torch.manual_seed(5)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        under_bf16 = train.evaluate(model, small.test_x)
    assert not torch.equal(again, under_bf16)  # the two arithmetics are distinguishable
    torch.manual_seed(5)
    assert torch.equal(train.evaluate(model, small.test_x), again)


def test_bf16_step_losses_are_close_to_fp32(small):
    torch.manual_seed(0)
    model = train.VAE()
    x = small.train_x[:128]
    torch.manual_seed(1)
    fp32 = train.losses(model, x)
    torch.manual_seed(1)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        bf16 = train.losses(model, x)
    assert bf16.dtype == torch.float32
    assert torch.allclose(bf16, fp32, rtol=2e-2)


def test_a_checkpoint_of_another_precision_is_refused_unless_auto(trained):
    # ``trained`` is fp32.
    with pytest.raises(CheckpointError, match="precision: checkpoint 'fp32' vs requested 'bf16'"):
        train.load_trained(trained, Config(epochs=1, precision="bf16"))
    assert train.load_trained(trained, Config(epochs=1, precision="auto"))


def test_checkpoints_get_the_usual_permissions(trained):
    mode = stat.S_IMODE(trained.stat().st_mode)
    assert mode == 0o666 & ~current_umask()


def test_a_retrained_model_is_compared_with_the_shipped_one(small, tmp_path, monkeypatch):
    _shipped_and_runs(tmp_path, monkeypatch)
    config = Config(epochs=1)
    _, shipped = train.train(config, out=train.checkpoint_path(config), data=small,
                             device="cpu", progress=False)
    loads, real_load = [], torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loads.append(a) or real_load(*a, **k))
    text = reports.compare_with_shipped(shipped, train.checkpoint_path(config), config)
    assert text == "" and loads == []  # nothing to say, and no second load of that file
    other = dataclasses.replace(small, train_x=small.train_x.flip(0))  # another run's history
    _, mine, out = reports.load_or_train(config, retrain=True, data=other, device="cpu",
                                         progress=False)
    text = reports.compare_with_shipped(mine, out, config)
    assert text.startswith("This is a retrained model")
    ours, theirs = reports.final_test(mine)["-ELBO"], reports.final_test(shipped)["-ELBO"]
    assert f"-ELBO{ours:29.2f}{theirs:12.2f}" in text


# ---------------------------------------------------------------------------- fail fast
# Each ordinary change below must be refused at once, naming the fix, never start a training.

SHIPPED = train.checkpoint_path(Config())
FAST = 10.0  # seconds: loading the shipped file, far below one training epoch


def _refused(call, match: str, capsys) -> CheckpointError:
    """Run ``call``; it must raise a CheckpointError matching ``match`` within FAST seconds,
    having printed no epoch."""
    start = time.perf_counter()
    with pytest.raises(CheckpointError, match=match) as caught:
        call()
    assert time.perf_counter() - start < FAST
    assert "epoch" not in capsys.readouterr().out
    return caught.value


def _ship(state: dict, tmp_path, monkeypatch) -> None:
    """Make ``state`` the shipped checkpoint of the default config, in a temporary folder."""
    _shipped_and_runs(tmp_path, monkeypatch)
    checkpoints.save_checkpoint(train.checkpoint_path(Config()), state)


def test_the_shipped_checkpoint_records_its_dataset_and_architecture():
    state = train.load_trained(SHIPPED, Config())
    assert state["config"]["dataset"] == "mnist"
    assert state["architecture"] == checkpoints.fingerprint(train.VAE())
    assert SHIPPED.name == "vae-z16-b128-lr0.001-e20-s0-log_sigma-w200.pt"


def test_a_latent_size_of_32_is_refused_not_trained(capsys):
    error = _refused(lambda: reports.load_or_train(Config(latent_dim=32), retrain=False),
                     "no shipped checkpoint", capsys)
    text = str(error)
    assert "vae-z32-b128-lr0.001-e20-s0-log_sigma-w200.pt" in text  # the file looked for
    assert "python -m helpers.train --latent-dim 32" in text and "RETRAIN = True" in text
    _refused(lambda: train.load_trained(SHIPPED, Config(latent_dim=32)),
             "latent_dim: checkpoint 16 vs requested 32", capsys)


class ELUDecoder(train.VAE):
    """The VAE with its decoder's first activation an ELU: the same weights, another model."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.decoder[1] = torch.nn.ELU()


def test_another_decoder_is_refused_naming_the_layer(monkeypatch, capsys):
    ELUDecoder().load_state_dict(load_checkpoint(SHIPPED)["model"])  # the weights alone fit
    monkeypatch.setattr(train, "VAE", ELUDecoder)  # as if vae.py had been edited
    error = _refused(lambda: reports.load_or_train(Config()),
                     r"decoder\.1: checkpoint ReLU\(\) vs model ELU\(alpha=1\.0\)", capsys)
    assert "make train" in str(error) and "RETRAIN = True" in str(error)
    _refused(lambda: train.model_from_state(load_checkpoint(SHIPPED)), "architecture",
             capsys)


def test_fashion_mnist_is_missing_and_never_trained_on_mnist(tmp_path, monkeypatch, capsys):
    fashion = Config(dataset="fashion-mnist")
    error = _refused(lambda: reports.load_or_train(fashion), "no shipped checkpoint", capsys)
    assert fashion.tag().endswith("-fashion-mnist") and fashion.tag() in str(error)
    assert "--dataset fashion-mnist" in str(error) and "RETRAIN = True" in str(error)
    _shipped_and_runs(tmp_path, monkeypatch)
    with pytest.raises(ValueError, match="no loader for dataset 'fashion-mnist'"):
        reports.load_or_train(fashion, retrain=True, device="cpu", progress=False)
    assert not train.retrain_path(fashion).exists()


def test_a_checkpoint_of_another_dataset_is_refused(tmp_path, monkeypatch, capsys):
    state = load_checkpoint(SHIPPED)
    state["config"]["dataset"] = "fashion-mnist"
    _ship(state, tmp_path, monkeypatch)
    error = _refused(lambda: reports.load_or_train(Config()),
                     "dataset: checkpoint 'fashion-mnist' vs requested 'mnist'", capsys)
    assert "make train" in str(error)


def test_another_value_of_a_training_option_is_refused(tmp_path, monkeypatch, capsys):
    state = load_checkpoint(SHIPPED)
    state["config"]["warmup"] = 100
    _ship(state, tmp_path, monkeypatch)
    error = _refused(lambda: reports.load_or_train(Config()),
                     "warmup: checkpoint 100 vs requested 200", capsys)
    assert "make train" in str(error) and "RETRAIN = True" in str(error)


@dataclasses.dataclass(frozen=True)
class ConfigWithDropout(Config):
    """Config after a new training option was added (as a ``Config`` field)."""

    dropout: float = 0.0


def test_a_new_training_option_is_refused_until_older_runs_are_said_to_match(tmp_path,
                                                                               monkeypatch,
                                                                               capsys):
    _refused(lambda: train.load_trained(SHIPPED, ConfigWithDropout()),
             "records no dropout.*python -m tools.restamp .*dropout=VALUE", capsys)
    _refused(lambda: reports.load_or_train(ConfigWithDropout()),
             "records no dropout.*tools.restamp.*RETRAIN = True", capsys)
    _ship(load_checkpoint(SHIPPED), tmp_path, monkeypatch)  # a copy, then say what it used
    restamp.restamp(train.checkpoint_path(Config()), {"dropout": 0.0})
    copy = train.checkpoint_path(Config())
    assert train.load_trained(copy, ConfigWithDropout())["meta"]["epochs_done"] == 20
    _refused(lambda: train.load_trained(copy, ConfigWithDropout(dropout=0.1)),
             "dropout: checkpoint 0.0 vs requested 0.1", capsys)


# ---------------------------------------------------------------------------- identity


def test_the_fingerprint_sees_what_the_weights_cannot():
    plain, elu = train.VAE(), ELUDecoder()
    assert plain.state_dict().keys() == elu.state_dict().keys()
    diff = set(checkpoints.fingerprint(elu)) ^ set(checkpoints.fingerprint(plain))
    assert diff == {"decoder.1: ReLU()", "decoder.1: ELU(alpha=1.0)"}
    not_in_place = train.VAE()
    not_in_place.encoder[1] = torch.nn.ReLU()  # inplace only saves memory: the same model
    assert checkpoints.fingerprint(not_in_place) == checkpoints.fingerprint(plain)


def test_a_checkpoint_without_an_architecture_is_refused(trained, tmp_path):
    state = load_checkpoint(trained)
    path = tmp_path / "old.pt"
    del state["architecture"]  # as checkpoints were written before it was recorded
    checkpoints.save_checkpoint(path, state)
    with pytest.raises(CheckpointError, match="records no architecture.*Retrain"):
        train.load_trained(path, Config(epochs=1, precision="fp32"))
    with pytest.raises(CheckpointError, match="records no architecture"):
        train.model_from_state(state)


def test_the_cli_has_an_option_for_every_config_field(small, tmp_path, monkeypatch, capsys):
    with pytest.raises(SystemExit):
        train.main(["--help"])
    shown = capsys.readouterr().out
    assert all(f"--{f.name.replace('_', '-')}" in shown for f in dataclasses.fields(Config))
    stub_data(monkeypatch, small)
    out = tmp_path / "cli.pt"
    train.main(["--epochs", "1", "--latent-dim", "4", "--seed", "3", "--warmup", "0",
                "--batch-size", "256", "--precision", "fp32", "--device", "cpu", "--out", str(out)])
    stored = load_checkpoint(out)["config"]
    assert stored == dataclasses.asdict(Config(epochs=1, latent_dim=4, seed=3, warmup=0,
                                               batch_size=256, precision="fp32"))


def test_cli_refuses_another_precision_before_saying_it_continues(small, tmp_path, monkeypatch,
                                                                  capsys):
    stub_data(monkeypatch, small)
    out = tmp_path / "cli.pt"
    train.main(["--epochs", "1", "--precision", "fp32", "--device", "cpu", "--out", str(out)])
    capsys.readouterr()
    before = out.read_bytes()
    with pytest.raises(SystemExit, match="precision: checkpoint 'fp32' vs requested 'bf16'.*"
                                         "To continue it, pass --precision fp32"):
        train.main(["--epochs", "2", "--precision", "bf16", "--device", "cpu", "--out", str(out)])
    assert "continuing" not in capsys.readouterr().out
    assert out.read_bytes() == before


def test_auto_precision_continues_a_run_in_its_own_precision(small, trained, tmp_path,
                                                            monkeypatch):
    monkeypatch.setattr(devices, "cpu_flags", lambda: {"avx512_bf16"})  # auto would pick bf16
    _copy(trained, tmp_path)  # fp32
    _, state = train.train(Config(epochs=2, precision="auto"), out=tmp_path / "ckpt.pt",
                           data=small, device="cpu", progress=False, resume=True)
    assert state["config"]["precision"] == "fp32" and state["meta"]["epochs_done"] == 2


# ---------------------------------------------------------------------------- names and data


def _another(f: dataclasses.Field) -> object:
    """A value of field ``f`` other than its default."""
    choices = f.metadata["choices"]
    if choices:
        return next((c for c in choices if c != f.default), f"not-{f.default}")
    return f.default * 2 if f.default else 1


def test_a_checkpoints_file_name_differs_whenever_its_config_does():
    assert train.checkpoint_path(Config()).name == "vae-z16-b128-lr0.001-e20-s0-log_sigma-w200.pt"
    names = {train.checkpoint_path(Config()).name}
    for f in dataclasses.fields(Config):
        changed = Config(**{f.name: _another(f)})
        names.add(train.checkpoint_path(changed).name)
        assert train.retrain_path(changed).name != train.retrain_path(Config()).name, f.name
    assert len(names) == 1 + len(dataclasses.fields(Config))  # all different from each other
    new = ConfigWithDropout(dropout=0.1)  # a new field is named too, and only off its default
    assert new.tag() != Config().tag() == ConfigWithDropout().tag()


def test_a_changed_default_renames_the_file_it_trains():
    @dataclasses.dataclass(frozen=True)
    class FashionByDefault(Config):
        dataset: str = "fashion-mnist"  # change (c): the default dataset changes

    assert FashionByDefault().tag() == Config(dataset="fashion-mnist").tag() != Config().tag()
    assert FashionByDefault().tag().endswith("-dataset-fashion-mnist")


def test_scoring_or_training_a_model_on_another_dataset_is_refused(small):
    fashion = dataclasses.replace(small, dataset="fashion-mnist")
    model = train.build_model(Config())
    assert model.dataset == "mnist"
    data.check_dataset(model.dataset, small)  # its own: fine
    with pytest.raises(data.DatasetMismatchError, match=r"load_data\(config.dataset\)"):
        data.check_dataset(model.dataset, fashion)
    with pytest.raises(data.DatasetMismatchError, match="cannot train on a model of 'mnist'"):
        train.train(Config(epochs=1), data=fashion, device="cpu", progress=False)
    shipped = load_checkpoint(SHIPPED)
    assert train.model_from_state(shipped).dataset == "mnist"
    # The notebook's data cell prints the overview before any scoring: it refuses there.
    with pytest.raises(data.DatasetMismatchError, match="cannot score a model of 'mnist'"):
        reports.overview(train.model_from_state(shipped), shipped, SHIPPED, fashion)


def test_the_overview_says_how_the_stored_weights_were_trained():
    stored = {"config": dataclasses.asdict(Config(lr=2e-3, batch_size=64, seed=3, warmup=50,
                                                  precision="fp32")),
              "meta": {"epochs_done": 7}}
    assert reports.describe(stored) == ("trained 7 epochs: Adam, learning rate 0.002, batch "
                                        "64, seed 3, 50-step warm-up, float32")


def test_the_data_follow_the_asked_dataset(monkeypatch, small):
    monkeypatch.setitem(data.LOADERS, "fashion-mnist", lambda: fashion)
    fashion = dataclasses.replace(small, dataset="fashion-mnist")
    assert data.load_data("fashion-mnist") is fashion
    with pytest.raises(ValueError, match="no loader for dataset 'kmnist'.*LOADERS"):
        data.load_data("kmnist")
