"""aot_edu.model.zoo and aot_edu.model.weights: the registry, safe loading, key diagnostics,
verified download (fake gdown)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from aot_edu.download import VerificationError, read_sidecar, write_sidecar
from aot_edu.model import state_dict_layout
from aot_edu.model import weights as ck
from aot_edu.model.weights import (
    check_state_dict,
    download_checkpoint,
    identify_variants,
    load_state_dict_file,
)
from aot_edu.model.zoo import (
    CHECKPOINTS,
    STAGES,
    SUPPORTED_VARIANTS,
    VARIANTS,
    CheckpointError,
    describe_checkpoints,
    get_checkpoint,
)
from conftest import require_shared

# --- registry ----------------------------------------------------------------------------------


def test_registry_has_every_variant_and_stage_once():
    pairs = [(e.variant, e.stage) for e in CHECKPOINTS]
    assert sorted(pairs) == sorted((v, s) for v in VARIANTS for s in STAGES)
    ids = [e.gdrive_id for e in CHECKPOINTS]
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 33 and i.replace("-", "").replace("_", "").isalnum() for i in ids)
    names = [e.filename for e in CHECKPOINTS]
    assert len(set(names)) == len(names)
    assert get_checkpoint("aott").filename == "AOTT_PRE_YTB_DAV.pth"
    assert get_checkpoint("r50_aotl", "PRE").filename == "R50_AOTL_PRE.pth"
    aotl = "https://drive.google.com/uc?id=1L1N2hkSPqrwGgnW9GyFHuG59_EYYfTG4"
    assert get_checkpoint("AOTL").url == aotl
    assert [e.variant for e in CHECKPOINTS if not e.supported] == ["swinb_aotl", "swinb_aotl"]
    assert set(SUPPORTED_VARIANTS) == set(VARIANTS) - {"swinb_aotl"}


def test_reported_figures_are_consistent():
    """Catches transcription slips: J&F is the mean of J and F; YouTube-VOS overall is the mean
    of its four parts (both to the zoo's rounding)."""
    for entry in CHECKPOINTS:
        if entry.stage == "PRE":
            assert entry.reported is None
            continue
        r = entry.reported
        for jf, j, f in (r.davis2017_val, r.davis2017_test_dev, r.davis2016_val):
            assert abs(jf - (j + f) / 2) <= 0.06, entry
        for overall, *parts in (r.youtubevos2018_val, r.youtubevos2018_val_all_frames,
                                r.youtubevos2019_val, r.youtubevos2019_val_all_frames):
            assert abs(overall - sum(parts) / 4) <= 0.1, entry
    assert get_checkpoint("aotl").reported.davis2017_val == (83.6, 80.8, 86.3)


def test_registry_lookup_errors_list_the_choices():
    with pytest.raises(ValueError, match="aott, aots"):
        get_checkpoint("aotx")
    with pytest.raises(ValueError, match="PRE_YTB_DAV"):
        get_checkpoint("aott", "MAIN")
    assert "swinb_aotl" in describe_checkpoints()


# --- loading -----------------------------------------------------------------------------------

def small_state() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"encoder.conv.weight": torch.randn(8, 3, 3, 3, generator=g),
            "decoder.bias": torch.randn(8, generator=g)}


def assert_same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert list(a) == list(b)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_load_unwraps_official_training_checkpoint(tmp_path):
    state = small_state()
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()  # real optimizer state: tensors, floats, tuples
    path = tmp_path / "save_step_100000.pth"
    torch.save({"state_dict": state, "optimizer": optimizer.state_dict()}, path)
    assert_same(load_state_dict_file(path), state)


@pytest.mark.parametrize("wrap", [
    lambda s: s,
    lambda s: {"model": s},
    lambda s: {"ema": s, "step": 3},
    lambda s: {"checkpoint": 1, "state_dict": {"model": s}},
    lambda s: {f"module.{k}": v for k, v in s.items()},
    lambda s: {"state_dict": {f"module.module.{k}": v for k, v in s.items()}},
])
def test_load_unwraps_containers_and_prefixes(tmp_path, wrap):
    state = small_state()
    path = tmp_path / "ckpt.pth"
    torch.save(wrap(state), path)
    assert_same(load_state_dict_file(path), state)
    assert_same(load_state_dict_file(wrap(state)), state)  # already loaded objects too


def test_load_rejects_non_tensor_entries_and_ambiguous_prefixes():
    with pytest.raises(CheckpointError, match="'lr' is a float"):
        load_state_dict_file({"weight": torch.ones(1), "lr": 0.1})
    with pytest.raises(CheckpointError, match="module."):
        load_state_dict_file({"w": torch.ones(1), "module.w": torch.ones(1)})


class NotATensor:
    pass


def corrupt_variants(data: bytes) -> dict[str, bytes]:
    flipped = bytearray(data)
    pickle_at = data.find(b"data.pkl") + 60  # inside the pickled structure
    flipped[pickle_at:pickle_at + 10] = bytes(b ^ 0xFF for b in flipped[pickle_at:pickle_at + 10])
    return {
        "truncated": data[: len(data) // 2],
        "truncated_end": data[:-20],
        "empty": b"",
        "garbage": bytes(range(256)) * 8,
        "html": b"<!DOCTYPE html><html><head><title>Google Drive - Quota exceeded</title>",
        "flipped_pickle": bytes(flipped),
    }


@pytest.mark.parametrize("kind,words", [
    ("truncated", "truncated or corrupt"),
    ("truncated_end", "truncated or corrupt"),
    ("empty", "empty"),
    ("garbage", "not a PyTorch checkpoint"),
    ("html", "web page"),
    ("flipped_pickle", "truncated or corrupt"),
])
def test_damaged_files_raise_a_clear_error(tmp_path, kind, words):
    good = tmp_path / "good.pth"
    torch.save({"state_dict": small_state()}, good)
    path = tmp_path / "AOTT_PRE_YTB_DAV.pth"
    path.write_bytes(corrupt_variants(good.read_bytes())[kind])
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path)
    message = str(info.value)
    assert str(path) in message and words in message
    assert "aot-edu download checkpoint aott" in message  # the exact command to fix it


def test_pickle_refused_by_weights_only_is_explained(tmp_path):
    path = tmp_path / "odd.pth"
    torch.save({"state_dict": small_state(), "extra": NotATensor()}, path)
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_state_dict_file(path)


def test_missing_file_says_how_to_download(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist.*download checkpoint aotl"):
        load_state_dict_file(tmp_path / "AOTL_PRE_YTB_DAV.pth")


def test_a_folder_is_called_a_folder(tmp_path):
    # build_model(..., weights="/tmp") said "Checkpoint /tmp does not exist"
    from aot_edu import build_model

    with pytest.raises(CheckpointError, match=r"is a folder, not a file.*give the checkpoint "
                                              r"file itself"):
        build_model("aott", weights=tmp_path)
    torch.save(small_state(), tmp_path / "mine.pth")
    with pytest.raises(CheckpointError, match=r"is a folder.*files there: mine\.pth"):
        load_state_dict_file(tmp_path)


def test_a_bare_file_name_is_also_looked_up_in_the_checkpoint_folder(tmp_path, monkeypatch):
    from aot_edu import build_model

    folder, work = tmp_path / "checkpoints", tmp_path / "work"
    folder.mkdir()
    work.mkdir()
    monkeypatch.setenv("AOT_EDU_CHECKPOINTS", str(folder))
    monkeypatch.chdir(work)
    name = "AOTT_PRE_YTB_DAV.pth"
    with pytest.raises(CheckpointError) as caught:
        build_model("aott", weights=name)
    message = str(caught.value)
    assert f"looked in the working directory ({work})" in message
    assert f"in the checkpoint folder ({folder}" in message and "AOT_EDU_CHECKPOINTS" in message
    assert f"`aot-edu download checkpoint aott --dir {folder}`" in message
    torch.manual_seed(0)
    reference = build_model("aott")
    torch.save(reference.state_dict(), folder / name)
    model = build_model("aott", weights=name)  # found in the checkpoint folder
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                  reference.state_dict().values(), strict=True))
    torch.save(small_state(), work / name)  # a file in the working directory comes first
    assert load_state_dict_file(name).keys() == small_state().keys()


def test_sidecar_catches_damage_torch_cannot_see(tmp_path):
    path = tmp_path / "ckpt.pth"
    state = {"w": torch.arange(4096, dtype=torch.float32)}
    torch.save(state, path)
    write_sidecar(path, ck.hash_file(path))
    data = bytearray(path.read_bytes())
    at = data.find(torch.arange(4096, dtype=torch.float32).numpy().tobytes()[4000:4016])
    data[at] ^= 0x40  # one bit inside the tensor data
    path.write_bytes(bytes(data))
    loaded = load_state_dict_file(path, check_sidecar=False)  # torch alone does not notice
    assert not torch.equal(loaded["w"], state["w"])
    with pytest.raises(CheckpointError, match="recorded when it was downloaded"):
        load_state_dict_file(path)


# --- diagnostics with hand-made layouts -------------------------------------------------------

def layout(**shapes: tuple[int, ...]) -> dict[str, torch.Size]:
    return {k.replace("__", "."): torch.Size(v) for k, v in shapes.items()}


TINY = layout(enc__w=(4, 3), lstt__0__w=(4, 4), dec__w=(2, 8))
SMALL = layout(enc__w=(4, 3), lstt__0__w=(4, 4), lstt__1__w=(4, 4), dec__w=(2, 12))
LAYOUTS = {"aott": TINY, "aots": SMALL, "aotb": SMALL, "aotl": SMALL}


def fake_state(shapes: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    return {k: torch.empty(s, device="meta") for k, s in shapes.items()}


def test_matching_state_dict_passes():
    assert check_state_dict(fake_state(TINY), TINY, variant="aott", layouts=LAYOUTS) is None


def test_mismatch_lists_keys_and_names_the_right_variant():
    with pytest.raises(CheckpointError) as info:
        check_state_dict(fake_state(TINY), SMALL, variant="aots", layouts=LAYOUTS)
    message = str(info.value)
    assert "1 missing" in message and "lstt.1.w" in message
    assert "1 with another shape" in message and "dec.w file [2, 8] vs model [2, 12]" in message
    assert "This looks like an AOT-T checkpoint; build the model with variant 'aott'" in message


def test_identical_layouts_are_named_together_not_guessed():
    with pytest.raises(CheckpointError) as info:
        check_state_dict(fake_state(SMALL), TINY, variant="aott", layouts=LAYOUTS)
    message = str(info.value)
    assert "AOT-S ('aots') / AOT-B ('aotb') / AOT-L ('aotl')" in message
    assert "identical" in message and "cannot tell" in message
    assert "build the model with variant" not in message


def test_unrelated_file_is_called_so_and_lists_are_capped():
    junk = fake_state(layout(**{f"x{i}": (1,) for i in range(9)}))
    with pytest.raises(CheckpointError) as info:
        check_state_dict(junk, TINY, variant="aott", layouts=LAYOUTS, max_listed=3)
    message = str(info.value)
    assert "9 unexpected" in message and "... and 6 more" in message
    assert "matches no known variant" in message


def test_without_layouts_the_message_still_lists_problems():
    with pytest.raises(CheckpointError, match="1 unexpected.*extra"):
        check_state_dict(fake_state({**TINY, "extra": torch.Size([1])}), TINY,
                         variant="aott", layouts={})


# --- diagnostics with the official layouts (../shared) ----------------------------------------

def read_layout_tsv(path: Path) -> dict[str, torch.Size]:
    shapes = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("#") or not line.strip():
            continue
        key, shape, _dtype = line.split("\t")
        shapes[key] = torch.Size(int(s) for s in shape.split("x"))
    return shapes


@pytest.fixture(scope="module")
def official_layouts() -> dict[str, dict[str, torch.Size]]:
    folder = require_shared("reference", "official_state_dicts")
    return {p.stem.lower(): read_layout_tsv(p) for p in sorted(folder.glob("*.tsv"))}


def test_official_layouts_fingerprint(official_layouts):
    assert set(official_layouts) == set(VARIANTS)
    found = {v: identify_variants(fake_state(s)) for v, s in official_layouts.items()}
    assert found == {"aott": ("aott",), "aots": ("aots",), "aotb": ("aotb", "aotl"),
                     "aotl": ("aotb", "aotl"), "r50_aotl": ("r50_aotl",),
                     "swinb_aotl": ("swinb_aotl",)}


@pytest.mark.parametrize("file_variant,model_variant,expected_words", [
    ("aott", "aotl", "This looks like an AOT-T checkpoint; build the model with variant 'aott'"),
    ("aots", "aott", "variant 'aots'"),
    ("r50_aotl", "aotl", "This looks like an R50-AOT-L checkpoint; build the model with variant "
                         "'r50_aotl'"),
    ("aotl", "aott", "is exactly the layout of AOT-B ('aotb') / AOT-L ('aotl')"),
    ("swinb_aotl", "aotl", "aot-edu does not build SwinB-AOT-L"),
])
def test_official_layouts_are_told_apart(official_layouts, file_variant, model_variant,
                                         expected_words):
    state = load_state_dict_file(  # as an official file would arrive: wrapped, DataParallel keys
        {"state_dict": {f"module.{k}": v
                        for k, v in fake_state(official_layouts[file_variant]).items()}})
    check_state_dict(state, official_layouts[file_variant], variant=file_variant,
                     layouts=official_layouts)  # its own layout: passes
    with pytest.raises(CheckpointError) as info:
        check_state_dict(state, official_layouts[model_variant], variant=model_variant,
                         layouts=official_layouts)
    assert expected_words in str(info.value)


# --- download_checkpoint (fake gdown) ----------------------------------------------------------

def fingerprint_state(width: int, layers: int) -> dict[str, torch.Tensor]:
    """The few tensors :func:`identify_variants` looks at (zeros; shapes are what matter)."""
    state = {"encoder_projector.weight": torch.zeros(256, width, 1, 1)}
    for i in range(layers):
        state[f"LSTT.layers.{i}.linear1.weight"] = torch.zeros(4, 4)
    return state


class FakeDrive:
    def __init__(self, content):
        self.content, self.calls = content, []

    def __call__(self, file_id, output, quiet):
        self.calls.append(file_id)
        if isinstance(self.content, bytes):
            Path(output).write_bytes(self.content)
        else:
            torch.save(self.content, output)


def layout_state(variant: str) -> dict[str, torch.Tensor]:
    """A state dict with the variant's exact keys and shapes; expanded zeros keep files tiny."""
    return {k: torch.zeros(1).expand(s) for k, s in state_dict_layout(variant).items()}


def test_download_checkpoint_verifies_and_records(tmp_path):
    drive = FakeDrive({"state_dict": layout_state("aott"), "optimizer": {}})
    path = download_checkpoint("aott", root=tmp_path, fetch=drive, progress=False)
    assert path == tmp_path / "AOTT_PRE_YTB_DAV.pth"
    assert drive.calls == [get_checkpoint("aott").gdrive_id]
    assert read_sidecar(path) == ck.hash_file(path)
    assert download_checkpoint("aott", root=tmp_path, fetch=drive, progress=False) == path
    assert len(drive.calls) == 1  # not downloaded again
    assert set(load_state_dict_file(path)) == set(state_dict_layout("aott"))


def test_download_checkpoint_rejects_another_variant(tmp_path):
    drive = FakeDrive({"state_dict": layout_state("aots")})  # an AOT-S file
    with pytest.raises(VerificationError, match="looks like an AOT-S checkpoint"):
        download_checkpoint("aott", root=tmp_path, fetch=drive, progress=False)
    assert (tmp_path / "AOTT_PRE_YTB_DAV.pth.corrupt").is_file()
    assert not (tmp_path / "AOTT_PRE_YTB_DAV.pth").exists()


def test_download_checkpoint_rejects_a_web_page(tmp_path):
    drive = FakeDrive(b"<!DOCTYPE html><html>Google Drive - Quota exceeded</html>")
    with pytest.raises(VerificationError, match="web page"):
        download_checkpoint("aotl", stage="PRE", root=tmp_path, fetch=drive, progress=False)


def test_download_checkpoint_full_layout_check(tmp_path):
    state = fingerprint_state(1280, 3)
    expected = {k: v.shape for k, v in state.items()}
    drive = FakeDrive({"state_dict": state})
    assert download_checkpoint("aotb", root=tmp_path, expected=expected, fetch=drive,
                               progress=False).is_file()
    wrong = {**expected, "decoder.conv_out.weight": torch.Size([11, 128, 1, 1])}
    with pytest.raises(VerificationError, match="1 missing"):
        download_checkpoint("aotl", root=tmp_path, expected=wrong, fetch=drive, progress=False)


def test_download_checkpoint_over_a_truncated_file_says_exactly_what_happens(tmp_path,
                                                                              capsys):
    from aot_edu.download import DownloadError

    dest = tmp_path / "AOTT_PRE_YTB_DAV.pth"
    torch.save({"state_dict": small_state()}, dest)
    dest.write_bytes(dest.read_bytes()[:200])  # truncated

    def offline(file_id, output, quiet):
        raise ConnectionError("Failed to resolve 'drive.google.com'")

    with pytest.raises(DownloadError) as info:
        download_checkpoint("aott", root=tmp_path, fetch=offline, progress=False)
    message, printed = str(info.value), capsys.readouterr().err
    for text in (message, printed):
        assert f"moved to {dest}.corrupt" in text
        assert ".." not in text.replace("...", "")  # one full stop (an ellipsis cuts torch's)
        assert "delete it and" not in text  # it was moved aside, not to be deleted
    assert "truncated" in printed and "What to do" not in printed  # the download's own words
    assert "a fresh download started from the first byte" in message
    assert "No bytes of it were received, so the next run starts from the beginning" in message
    assert "resumes" not in message
    assert (tmp_path / "AOTT_PRE_YTB_DAV.pth.corrupt").stat().st_size == 200


def test_download_checkpoint_default_folder_and_unsupported(tmp_path, monkeypatch):
    monkeypatch.setenv("AOT_EDU_CHECKPOINTS", str(tmp_path / "ckpts"))
    drive = FakeDrive({"state_dict": fingerprint_state(512, 3)})
    with pytest.raises(ValueError, match="does not build"):
        download_checkpoint("swinb_aotl", fetch=drive, progress=False)
    path = download_checkpoint("swinb_aotl", allow_unsupported=True, fetch=drive, progress=False)
    assert path == tmp_path / "ckpts" / "SwinB_AOTL_PRE_YTB_DAV.pth"


@pytest.mark.parametrize("case,variant", [("aott_demo", "aott"), ("aotl_demo", "aotl")])
def test_golden_files_load_and_fit_their_official_layout(official_layouts, case, variant):
    """The golden files hold a state dict made by the official model (next to frames, logits,
    ...): it must unwrap, fingerprint as its variant and match the official layout exactly."""
    path = require_shared("golden", f"{case}.pt")
    state = load_state_dict_file(path)
    assert variant in identify_variants(state)
    check_state_dict(state, official_layouts[variant], variant=variant, layouts=official_layouts)
    assert all(v.dtype == torch.float32 for v in state.values())


def test_the_users_own_damaged_file_is_left_alone_and_never_loaded_unsafely(tmp_path):
    """A file aot-edu did not download: no "download it again (moved to .corrupt)", nothing
    moved, and never PyTorch's advice to load with weights_only=False (issue 21)."""
    good = tmp_path / "good.pth"
    torch.save({"state_dict": small_state()}, good)
    mine = tmp_path / "my_finetune.pth"
    mine.write_bytes(good.read_bytes()[:300])
    odd = tmp_path / "with_objects.pth"
    torch.save({"state_dict": small_state(), "extra": NotATensor()}, odd)
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    for path, what in [(mine, "it is truncated or corrupt"),
                       (odd, "a safe load refuses the Python object "
                             "test_model_weights.NotATensor in it")]:
        with pytest.raises(CheckpointError) as info:
            load_state_dict_file(path)
        message = str(info.value)
        assert message.startswith(f"Cannot load checkpoint {path}: ") and what in message
        assert (f"What to do: {path.name} is not a file aot-edu downloads, so it was left as it "
                "is: save it again where it was made") in message
        assert ".corrupt" not in message and "weights_only=False" not in message
        assert "\x1b[" not in message  # PyTorch's terminal colours are dropped
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == before  # nothing moved


def test_a_damaged_official_file_names_the_download_that_replaces_it(tmp_path):
    path = tmp_path / "AOTT_PRE.pth"
    path.write_bytes(b"\x80\x02 not a whole pickle")
    with pytest.raises(CheckpointError) as info:
        load_state_dict_file(path)
    assert ("What to do: download it again (the download moves this copy aside to "
            "AOTT_PRE.pth.corrupt first, so nothing is deleted): `aot-edu download checkpoint "
            f"aott --stage PRE --dir {tmp_path}`") in str(info.value)
    assert path.read_bytes() == b"\x80\x02 not a whole pickle"  # loading moves nothing
