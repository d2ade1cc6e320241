"""The one registry of datasets: where each comes from, the folder and layout aot-edu keeps it
in, how it is evaluated, and :func:`download_dataset`, which fetches and unpacks it.

Everything else asks here: the readers (:mod:`.datasets`) for the hint when a folder is
missing, the benchmark runner (``aot-edu eval``) for the datasets, their splits and folders, the
trainer for a real-data folder, the command line for the names. The fetching itself - resumable,
verified, with safe unpacking - is :mod:`aot_edu.download`'s.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from aot_edu import download, paths
from aot_edu.download import (
    ArchiveTooLargeError,
    DownloadError,
    GDriveFetch,
    GDriveListFolder,
    GoogleDriveError,
    as_sentence,
    download_gdrive,
    download_url,
    extract_archive,
    hash_file,
    marker_path,
    quarantine,
    sidecar_path,
    unpack_limits,
    write_sidecar,
)

__all__ = ["DATASETS", "DatasetArchive", "DatasetSource", "dataset_folder", "describe_datasets",
           "download_dataset", "download_hint", "downloadable_datasets", "get_dataset"]


@dataclass(frozen=True)
class DatasetArchive:
    """One downloadable archive of a dataset ("part": a split or a resolution).

    Exactly one source is set: a direct ``url``, or ``gdrive_folder`` (the id of a public
    Google Drive folder holding a file called ``filename``). ``md5``/``sha256``/``size`` are
    the official values where the data's owners publish them, else ``None`` (then the sidecar
    records the first verified copy). The archive unpacks into ``<dataset folder>/<subdir>``
    with ``strip_prefix`` removed, and ``required`` (paths relative to the dataset folder) must
    exist afterwards. ``contents_bytes`` and ``contents_members`` (files and folders) are what
    it is known to hold, an upper estimate; unpacking more is refused (:func:`unpack_limits`).
    """

    part: str
    filename: str
    required: tuple[str, ...]
    url: str | None = None
    gdrive_folder: str | None = None
    subdir: str = ""
    strip_prefix: str | None = None
    md5: str | None = None
    sha256: str | None = None
    size: int | None = None
    contents_bytes: int | None = None
    contents_members: int | None = None


@dataclass(frozen=True)
class DatasetSource:
    """A dataset aot-edu knows: where it comes from, the folder and layout it is kept in (under
    the data root), and how it is evaluated (``family``, ``year``, ``eval_split``)."""

    name: str
    title: str
    directory: str  # the folder under the data root (``AOT_EDU_DATA``)
    archives: tuple[DatasetArchive, ...]  # empty: aot-edu reads it but does not download it
    default_parts: tuple[str, ...]
    homepage: str
    notes: str = ""
    family: str = "davis"  # the layout, and the reader: "davis" (DAVIS) or "youtubevos" (YouTubeVOS)
    year: int = 2017
    eval_split: str = "val"  # the split ``aot-edu eval`` runs by default
    manual: str = ""  # where to get it, when aot-edu does not download it

    @property
    def downloadable(self) -> bool:
        return bool(self.archives)

    def archive(self, part: str) -> DatasetArchive:
        for archive in self.archives:
            if archive.part == part:
                return archive
        known = ", ".join(a.part for a in self.archives)
        raise ValueError(f"{self.name} has no part {part!r}; choose from: {known}")


# No checksum is filled in below on purpose. The DAVIS zips have no hash published by their
# owners next to the download, and the MD5s found in old public scripts for DAVIS 2016's
# DAVIS-data.zip disagree with one another (fperazzi/davis-2017, data/get_davis.sh, lists
# 95b4696219f7a44cda4b2ca64e31865c at 49d93879 and other values in earlier revisions: the zip
# was replaced over time), so enforcing any of them could reject a good copy. The sidecar
# SHA-256 written at the first verified download protects later runs.
#
# Nor are the unpacked sizes published. contents_bytes / contents_members below are upper
# estimates from what each archive holds (sequences and frames: a JPEG and, where annotated, a
# PNG per frame, plus their folders), rounded up; the archives themselves are about as large
# (JPEG and PNG do not compress). Unpacking is refused beyond 1.5 times them.
_GB = 10**9
DATASETS: tuple[DatasetSource, ...] = (
    DatasetSource(
        name="davis2017",
        title="DAVIS 2017 semi-supervised, train + val, 480p",
        family="davis", year=2017, eval_split="val",
        directory="DAVIS2017",
        archives=(
            DatasetArchive(
                part="trainval",
                filename="DAVIS-2017-trainval-480p.zip",
                url="https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-trainval-480p.zip",
                strip_prefix="DAVIS/",
                required=("JPEGImages/480p", "Annotations/480p", "ImageSets/2017/val.txt"),
                # 90 sequences, 6,208 frames, all annotated
                contents_bytes=int(2.5 * _GB), contents_members=13_000,
            ),
            DatasetArchive(
                part="test-dev",
                filename="DAVIS-2017-test-dev-480p.zip",
                url="https://data.vision.ee.ethz.ch/csergi/share/davis/DAVIS-2017-test-dev-480p.zip",
                strip_prefix="DAVIS/",
                required=("ImageSets/2017/test-dev.txt",),
                # 30 sequences, 2,086 frames, first frames annotated
                contents_bytes=1 * _GB, contents_members=2_500,
            ),
        ),
        default_parts=("trainval",),
        homepage="https://davischallenge.org/davis2017/code.html",
        notes=(
            "The zip holds a top folder DAVIS/ with JPEGImages/480p/<seq>/*.jpg, "
            "Annotations/480p/<seq>/*.png (palette PNGs, pixel value = object id) and "
            "ImageSets/2017/{train,val}.txt; aot-edu drops the DAVIS/ level. The official AOT "
            "code evaluates DAVIS 2016 from this same folder (ImageSets/2016/val.txt, all "
            "objects merged into one)."
        ),
    ),
    DatasetSource(
        name="davis2016",
        title="DAVIS 2016 (single object), 480p and 1080p",
        family="davis", year=2016, eval_split="val",
        directory="DAVIS2016",
        archives=(
            DatasetArchive(
                part="trainval",
                filename="DAVIS-data.zip",
                url="https://graphics.ethz.ch/Downloads/Data/Davis/DAVIS-data.zip",
                strip_prefix="DAVIS/",
                required=("JPEGImages/480p", "Annotations/480p", "ImageSets/480p/val.txt"),
                # 50 sequences, 3,455 frames, all annotated, at 480p and 1080p (a 1.9 GB zip)
                contents_bytes=3 * _GB, contents_members=15_000,
            ),
        ),
        default_parts=("trainval",),
        homepage="https://davischallenge.org/davis2016/code.html",
        notes=(
            "The zip holds a top folder DAVIS/ with JPEGImages/{480p,1080p}, "
            "Annotations/{480p,1080p} (grayscale PNGs, 0 = background, 255 = the object) and "
            "ImageSets/{480p,1080p}/{train,val,trainval}.txt, whose lines are frame pairs "
            "'/JPEGImages/480p/<seq>/00000.jpg /Annotations/480p/<seq>/00000.png'. aot-edu "
            "drops the DAVIS/ level and adds ImageSets/2016/{train,val}.txt (one sequence name "
            "per line, derived from the 480p lists)."
        ),
    ),
    DatasetSource(
        name="youtubevos2019",
        title="YouTube-VOS 2019",
        family="youtubevos", year=2019, eval_split="valid",
        directory="YouTubeVOS2019",
        archives=tuple(
            DatasetArchive(
                part=part,
                filename=f"{part}.zip",
                # The folder the official AOT README links for "datasets/YTB/2019".
                gdrive_folder="1BWzrCWyPEmBEKm0lOHe5KLuBuQxUSwqz",
                subdir=part,
                strip_prefix=f"{part}/",
                required=required,
                contents_bytes=contents_bytes,
                contents_members=contents_members,
            )
            # 507 validation videos (about 14,000 frames at 6 fps, the first masks annotated;
            # five times the frames at 30 fps), 3,471 training videos (about 95,000 frames,
            # all annotated), 1280x720 JPEGs
            for part, required, contents_bytes, contents_members in (
                ("valid", ("valid/JPEGImages", "valid/Annotations", "valid/meta.json"),
                 4 * _GB, 25_000),
                ("valid_all_frames", ("valid_all_frames/JPEGImages",), 20 * _GB, 110_000),
                ("train", ("train/JPEGImages", "train/Annotations", "train/meta.json"),
                 25 * _GB, 200_000),
            )
        ),
        default_parts=("valid",),
        homepage="https://youtube-vos.org/dataset/vos/",
        notes=(
            "Archives come from the YouTube-VOS 2019 Google Drive folder linked by the official "
            "AOT README (CodaLab hosts the evaluation server: "
            "https://competitions.codalab.org/competitions/20127). Each part unpacks to "
            "<part>/JPEGImages/<video>/*.jpg, <part>/Annotations/<video>/*.png and "
            "<part>/meta.json (the layout of AOT's datasets/YTB/2019/<part>). 'valid' (6 fps) "
            "is what evaluation needs; 'valid_all_frames' (30 fps) and 'train' are large. "
            "Using YouTube-VOS means accepting its terms on youtube-vos.org."
        ),
    ),
    DatasetSource(
        name="youtubevos2018",
        title="YouTube-VOS 2018",
        family="youtubevos", year=2018, eval_split="valid",
        directory="YouTubeVOS2018",
        archives=(),  # no official source aot-edu may fetch from
        default_parts=(),
        homepage="https://youtube-vos.org/dataset/vos/",
        manual="get YouTube-VOS 2018 from https://youtube-vos.org/dataset/vos/ (its valid.zip "
               "unpacks to valid/JPEGImages, valid/Annotations, valid/meta.json)",
    ),
)


def get_dataset(name: str) -> DatasetSource:
    """The registry entry called ``name`` (``davis2017``, ``davis2016``, ``youtubevos2019``,
    ``youtubevos2018``; case, ``-`` and ``_`` do not matter)."""
    key = name.lower().replace("-", "").replace("_", "")
    for source in DATASETS:
        if source.name == key:
            return source
    known = ", ".join(s.name for s in DATASETS)
    raise ValueError(f"unknown dataset {name!r}; choose from: {known}")


def downloadable_datasets() -> tuple[DatasetSource, ...]:
    """The datasets ``aot-edu download dataset`` fetches from their official sources."""
    return tuple(source for source in DATASETS if source.downloadable)


def dataset_folder(name: str) -> Path:
    """Where ``aot-edu download dataset`` puts ``name``: ``<data dir>/<directory>``.

    The data dir is ``$AOT_EDU_DATA`` (else ``data/`` in the project). DAVIS 2016 falls back to
    the DAVIS 2017 folder when only that one exists: it holds ``ImageSets/2016`` and the official
    AOT code evaluates DAVIS 2016 from it.
    """
    source = get_dataset(name)
    data_dir = paths.data_dir()
    root = data_dir / source.directory
    if source.name == "davis2016" and not root.is_dir():
        davis2017 = data_dir / get_dataset("davis2017").directory
        if (davis2017 / "ImageSets" / "2016").is_dir():
            return davis2017
    return root


def download_hint(name: str) -> str:
    """What to do when dataset ``name`` is not on disk: the ``aot-edu download dataset`` command
    when aot-edu downloads it, else where to get it."""
    try:
        source = get_dataset(name)
    except ValueError:
        source = None
    if source is not None and source.downloadable:
        return (f"run `aot-edu download dataset {source.name}` to get it (or pass the folder "
                "that holds it)")
    where = source.manual if source is not None else f"get {name} from its official site"
    return (f"aot-edu does not download {name}: {where}, then pass the folder that holds it "
            "(`--data-root`)")


def _derive_davis2016_sequence_lists(folder: Path) -> None:
    """Write ``ImageSets/2016/{train,val}.txt`` (sequence names) from the 480p frame lists."""
    for split in ("train", "val"):
        source = folder / "ImageSets" / "480p" / f"{split}.txt"
        target = folder / "ImageSets" / "2016" / f"{split}.txt"
        if target.exists() or not source.is_file():
            continue
        names: list[str] = []
        for line in source.read_text(encoding="utf-8").splitlines():
            if not line.strip():
                continue
            sequence = PurePosixPath(line.split()[0]).parent.name
            if sequence and sequence not in names:
                names.append(sequence)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("".join(f"{n}\n" for n in names), encoding="utf-8")


_POST_EXTRACT: dict[str, Callable[[Path], None]] = {
    "davis2016": _derive_davis2016_sequence_lists,
}


def download_dataset(
    name: str | DatasetSource,
    root: str | Path | None = None,
    *,
    parts: Sequence[str] | None = None,
    keep_archive: bool = True,
    progress: bool = True,
    fetch: GDriveFetch | None = None,
    list_folder: GDriveListFolder | None = None,
) -> Path:
    """Download and unpack a dataset into ``root/<directory>``; return that folder.

    ``name`` is a registry name (see :data:`DATASETS`; ``aot-edu download list``) or a
    :class:`DatasetSource`. ``root`` defaults to the course's data folder
    (``AOT_EDU_DATA``). ``parts`` chooses archives (default: the ones evaluation needs).
    Archives are kept in ``root`` unless ``keep_archive=False``; a part whose extraction
    finished before is skipped without touching the network. An archive that would unpack to
    more than 1.5 times what it is known to hold is refused and left in place
    (:class:`ArchiveTooLargeError`; the message names the ``AOT_EDU_UNPACK_LIMIT_SCALE`` that
    lets it through); a damaged or unsafe one is moved to ``<archive>.corrupt``.
    ``fetch``/``list_folder`` replace gdown for Google Drive parts (tests).
    """
    source = get_dataset(name) if isinstance(name, str) else name
    if not source.downloadable:
        raise ValueError(f"aot-edu does not download {source.name}: {source.manual}")
    if root is None:
        root = paths.data_dir()
    root = Path(root)
    folder = root / source.directory
    for part in parts or source.default_parts:
        archive = source.archive(part)
        extract_to = folder / archive.subdir if archive.subdir else folder
        archive_path = root / archive.filename
        if marker_path(extract_to, archive_path).is_file() and _missing(folder, archive) == []:
            continue
        # The sidecar SHA-256 is recorded only once the archive has unpacked to the expected
        # layout: a bad zip must never become the copy later ones are measured against.
        if archive.url is not None:
            download_url(archive.url, archive_path, md5=archive.md5, sha256=archive.sha256,
                         size=archive.size, progress=progress, record=False)
            by_hand = f"download it by hand from {archive.url}"
        elif archive.gdrive_folder is not None:
            link = f"https://drive.google.com/drive/folders/{archive.gdrive_folder}"
            download_gdrive(
                "", archive_path, md5=archive.md5, sha256=archive.sha256, size=archive.size,
                progress=progress,
                fetch=_fetch_from_folder(archive, archive_path, fetch, list_folder),
                manual_url=link, record=False,
            )
            by_hand = f"download {archive.filename} by hand from {link}"
        else:
            raise ValueError(f"{source.name}/{archive.part} has neither url nor gdrive_folder")
        limits = unpack_limits(archive.contents_bytes, archive.contents_members,
                               archive_size=archive_path.stat().st_size,
                               name=f"{source.name} {archive.part}")
        try:
            extract_archive(archive_path, extract_to, strip_prefix=archive.strip_prefix,
                            progress=progress, limits=limits)
        except ArchiveTooLargeError:
            raise  # maybe genuine (the data grew): left in place; the message says what to do
        except DownloadError as error:  # not a zip, a damaged member, an unsafe member
            moved = quarantine(archive_path)
            what = str(error).partition("\nWhat to do:")[0]
            raise type(error)(
                f"{what}\nThe archive was moved to {moved} (kept; delete it when you no longer "
                "need it).\nWhat to do: run the same command again to download a fresh copy; "
                f"if it fails again, {by_hand}, save it as {archive_path}, then run the same "
                "command again."
            ) from error
        post = _POST_EXTRACT.get(source.name)
        if post is not None:
            post(folder)
        missing = _missing(folder, archive)
        if missing:
            present = sorted(p.name for p in extract_to.iterdir()) if extract_to.is_dir() else []
            raise DownloadError(
                f"{archive.filename} unpacked into {extract_to}, but {', '.join(missing)} "
                f"is missing (found: {', '.join(present) or 'nothing'}). The archive's layout "
                "is not the expected one; please report this with the listing above."
            )
        if keep_archive:
            write_sidecar(archive_path, hash_file(archive_path, progress=progress))
        else:
            archive_path.unlink(missing_ok=True)
            sidecar_path(archive_path).unlink(missing_ok=True)  # no record of a file not kept
    return folder


def _fetch_from_folder(
    archive: DatasetArchive,
    archive_path: Path,
    fetch: GDriveFetch | None,
    list_folder: GDriveListFolder | None,
) -> GDriveFetch:
    """A gdown-style fetch that first looks the file id up in the archive's Drive folder.

    The lookup happens only when bytes are needed, so a verified archive already on disk costs
    no network access.
    """

    def fetch_from_folder(_: str, output: Path, quiet: bool) -> object:
        assert archive.gdrive_folder is not None
        folder_link = f"https://drive.google.com/drive/folders/{archive.gdrive_folder}"
        manual = (f"What to do: open {folder_link} in a browser, download {archive.filename}, "
                  f"save it as {archive_path}, then run the same command again.")
        try:
            listing = (list_folder or download._gdown_list_folder)(archive.gdrive_folder)
        except GoogleDriveError as error:
            raise GoogleDriveError(f"{as_sentence(error)}\n{manual}") from error
        if archive.filename not in listing:
            raise GoogleDriveError(
                f"{archive.filename} is not among the files visible in the Google Drive "
                f"folder {folder_link} (found: {', '.join(sorted(listing)) or 'nothing'}).\n"
                f"{manual}"
            )
        return (fetch or download._gdown_fetch)(listing[archive.filename], output, quiet)

    return fetch_from_folder


def _missing(folder: Path, archive: DatasetArchive) -> list[str]:
    return [rel for rel in archive.required if not (folder / rel).exists()]


def describe_datasets(sources: Iterable[DatasetSource] | None = None) -> str:
    """A human-readable table of the datasets aot-edu downloads (``aot-edu download list``)."""
    lines = []
    for source in downloadable_datasets() if sources is None else sources:
        parts = ", ".join(
            a.part + (" (default)" if a.part in source.default_parts else "")
            for a in source.archives
        )
        lines.append(f"  {source.name:<16} {source.title}")
        lines.append(f"  {'':<16} parts: {parts}; unpacks to <data>/{source.directory}/")
    return "\n".join(lines)
