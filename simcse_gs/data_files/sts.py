"""SimCSE's STS archive (``senteval.tar``), checked file by file before it is installed."""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from .download import ChecksumError, data_url, download, sha256_of
from .locations import DEFAULT_STS_DIR, say

STS_ARCHIVE = "senteval.tar"


def _extract(archive: Path, into: Path) -> None:
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(into, filter="data")  # no absolute paths, links out of the folder, devices
        else:  # pragma: no cover (Python without PEP 706)
            for member in tar.getmembers():
                if member.name.startswith(("/", "..")) or ".." in Path(member.name).parts or not (
                        member.isfile() or member.isdir()):
                    raise ChecksumError(f"{archive}: unexpected member {member.name!r}; nothing was installed")
            tar.extractall(into)


def fetch_sts(dest: str | os.PathLike | None = None, progress: bool = True) -> Path:
    """SimCSE's STS archive, checked file by file (:data:`STS_SHA256`), installed as ``dest/STS`` and ``dest/SICK``."""
    dest = Path(dest) if dest else DEFAULT_STS_DIR
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=dest, prefix=".download-") as tmp:
        archive = Path(tmp) / STS_ARCHIVE
        download(data_url(STS_ARCHIVE), archive, progress=progress)
        try:
            _extract(archive, Path(tmp) / "x")
        except (tarfile.TarError, OSError) as err:
            raise ChecksumError(f"{data_url(STS_ARCHIVE)} is not a readable tar archive ({err}); nothing was "
                                "installed") from None
        archive.unlink()
        found = [p.parent for p in (Path(tmp) / "x").rglob("STSBenchmark") if p.parent.name == "STS"]
        if not found:
            raise ChecksumError(f"{data_url(STS_ARCHIVE)} has no STS/STSBenchmark folder; nothing was installed")
        root = found[0].parent
        bad = [name for name, digest in STS_SHA256.items()
               if not (root / name).is_file() or sha256_of(root / name) != digest]
        if bad:
            raise ChecksumError(
                f"{len(bad)} of the {len(STS_SHA256)} STS files are missing or differ from the copy this project's "
                f"numbers were measured on ({', '.join(bad[:3])}{' …' if len(bad) > 3 else ''}); nothing was "
                "installed. bash SentEval/data/downstream/download_dataset.sh installs the archive unchecked."
            )
        for folder in ("STS", "SICK"):
            if (dest / folder).exists():
                shutil.rmtree(dest / folder)
            shutil.move(str(root / folder), str(dest / folder))
    say(f"{dest}: STS12-16, STS-B and SICK-R installed, {len(STS_SHA256)} files SHA-256 verified")
    return dest


# The files the evaluation reads, with the SHA-256 of the copy this project's numbers were measured on
# (docs/EVALUATION.md; the shared data manifest). Generated from that copy.
STS_SHA256 = {
    "STS/STS12-en-test/STS.input.MSRpar.txt":
        "21c0c6cc32f68f69d672dfae0f86935cdc2627bae4941381692941aa9320f8c4",
    "STS/STS12-en-test/STS.gs.MSRpar.txt":
        "5526be59228bc34ccb3cb6f1f56c0d7278d3419b8886713ae016fd92b151f19c",
    "STS/STS12-en-test/STS.input.MSRvid.txt":
        "c4a92a3645744f77d1cda9f2af7da5d11e807ae296f6a20fe5930403fb9c4dfe",
    "STS/STS12-en-test/STS.gs.MSRvid.txt":
        "9c6096c6bcfb0144c8bbddb00900ca9198c88498630cd0c8f08d18365f1d7150",
    "STS/STS12-en-test/STS.input.SMTeuroparl.txt":
        "05acf33c0fcb592347f49e279137a17e0244d7b0d37cc113134320a5d3f586e1",
    "STS/STS12-en-test/STS.gs.SMTeuroparl.txt":
        "708530c4d006d06881f3289fce35d624d7efe562dcf0fe5f8aa0eec3a135f6d4",
    "STS/STS12-en-test/STS.input.surprise.OnWN.txt":
        "e605c67de4b7cee2c5629239d209e2845920f475ebd0468bdcf03d8da2ffa9cf",
    "STS/STS12-en-test/STS.gs.surprise.OnWN.txt":
        "088d8ca22c0aa406e4a5d2e6e308a4f38b482b8e736c2445a38ffb6e4c4fb4fd",
    "STS/STS12-en-test/STS.input.surprise.SMTnews.txt":
        "cc4a0b9a1355c5680a8a37c02f2d08e35f95754b9f89a2a4a05088ee5ff57ffe",
    "STS/STS12-en-test/STS.gs.surprise.SMTnews.txt":
        "aa6dfc868db333c43dc59be14d46fa6587c7ebddc0d497e717f647bf35121cf1",
    "STS/STS13-en-test/STS.input.FNWN.txt":
        "a20cb41a33a528f3c089c94ef24da8eb5e26ed594937cf6fa90f3d1c79d6c53c",
    "STS/STS13-en-test/STS.gs.FNWN.txt":
        "8ca95b7228119578e2007839cf7969f22c4f1fd41fd610c4b7f9683072d98066",
    "STS/STS13-en-test/STS.input.headlines.txt":
        "637f3b4afdc8d1cc789e91a4d7217efff30e503c34a872d93e8b27e7b1136cb7",
    "STS/STS13-en-test/STS.gs.headlines.txt":
        "f49f64089011436dd296ef384c07160219406feef7dc4b9fa2af52a519f32bc6",
    "STS/STS13-en-test/STS.input.OnWN.txt":
        "cb74993eef23cfa2c03da7e5a08c62e50c9baafae0fa9ba0bb5a09d8e7d2be65",
    "STS/STS13-en-test/STS.gs.OnWN.txt":
        "0cd497aaddb00a2fb6db25f77bccfc09e8aa012e11549b81b434bab1a27ad954",
    "STS/STS14-en-test/STS.input.deft-forum.txt":
        "b39579e59c7b9f4063545c3d4643f8db16dc060cd0a35447ef56ff0aabec9d83",
    "STS/STS14-en-test/STS.gs.deft-forum.txt":
        "ba6dc76696b5c93985590a325b4d142449932cdf0d715b2bab1b1743fe3c488c",
    "STS/STS14-en-test/STS.input.deft-news.txt":
        "cc450dcd9228211c1a311de1ff28199f166dce6f7fc81dcb5ce968a3a8a80d2d",
    "STS/STS14-en-test/STS.gs.deft-news.txt":
        "105c5b333abd50c274efb4dae9e3e0dab36ed63eee780cfb49955b1586bd62f2",
    "STS/STS14-en-test/STS.input.headlines.txt":
        "2ed0ea55d196cdbb440ed428eb1846dcb43486a692aafb22b3bc5c14c44407c8",
    "STS/STS14-en-test/STS.gs.headlines.txt":
        "f243c34647255cd0b994565ed4f58dd31506e7d9c9d6250d1a6dd14095625832",
    "STS/STS14-en-test/STS.input.images.txt":
        "295fc99f8a9215c330b36a08bc1ff3e428f10057be5bb915262111494b3616e2",
    "STS/STS14-en-test/STS.gs.images.txt":
        "fc994ebacc7074c332626fa9e29542d7340a48a3cdb999b47cdb59c378523a62",
    "STS/STS14-en-test/STS.input.OnWN.txt":
        "8cd2333328d17e3212afa2d43dd934c5521e3fd35fc786b992dc7864f9d34f8f",
    "STS/STS14-en-test/STS.gs.OnWN.txt":
        "1c80147df270ea4cfce14a47ed29f8a2f10d5dc016d02836077fd786ff7f535b",
    "STS/STS14-en-test/STS.input.tweet-news.txt":
        "b25b3768762aa7cdcd89f2a25ce5049de7e4cd51b138227c3a31092ae8e2b5f5",
    "STS/STS14-en-test/STS.gs.tweet-news.txt":
        "0098c644bfeaa2d511a8297b1940771865900c372c9dd49a62726dc5ec02c9a3",
    "STS/STS15-en-test/STS.input.answers-forums.txt":
        "b8f1bc125559adbb3ac5b33206472b217c12621c3a6b5a8575da47dc0b536fc4",
    "STS/STS15-en-test/STS.gs.answers-forums.txt":
        "1644301a7540e5484da285002e9269062852efb2272be614cad99c9530f6a102",
    "STS/STS15-en-test/STS.input.answers-students.txt":
        "4893f736e84cea176c39c882250f6513d5bbcfa6ebe8d3ffabcef6056d0471a7",
    "STS/STS15-en-test/STS.gs.answers-students.txt":
        "028db213140f8c7aef7497c4ae38b6380938f20359852231669c83dce11c3701",
    "STS/STS15-en-test/STS.input.belief.txt":
        "a54ec7af1924c900d8474586abae465819d2c03c73561aa2e76e7fa5e836faff",
    "STS/STS15-en-test/STS.gs.belief.txt":
        "5736192faaccbdbecd0ef6b73ec04b24115cd2e48d55dc3b1b170da3d2a81c75",
    "STS/STS15-en-test/STS.input.headlines.txt":
        "85d90b0f8f258a47758808d382188ba2ee7b1adbbf84feb776afad0e4691d5d1",
    "STS/STS15-en-test/STS.gs.headlines.txt":
        "e8e432f769c8a94ddb62ae3343890ac24a9dd78a116d56c707313bc59413dd56",
    "STS/STS15-en-test/STS.input.images.txt":
        "0dac9494186838a8f4dfbb4ee290fec8d7581cf84a33d615c522700b3b50e0d6",
    "STS/STS15-en-test/STS.gs.images.txt":
        "ed8878209098c77ca7f02ac413d3fd698f92ad3425999555e50fda89fc46012a",
    "STS/STS16-en-test/STS.input.answer-answer.txt":
        "ebbffced7d4630755e61d4dfe4d82121198965a14b9f5734b5abedb961f0725c",
    "STS/STS16-en-test/STS.gs.answer-answer.txt":
        "332efd741b0cb247d20dd2a6cec854360c921c7e6b395f328f562d8d26057214",
    "STS/STS16-en-test/STS.input.headlines.txt":
        "705c3e82fb85fa3b6706a481b790e1030304ddc9c72d39e126693ed44b258ba6",
    "STS/STS16-en-test/STS.gs.headlines.txt":
        "01e33a95996201a6e81e3cce9eda0f15048b77613ea64dce2929bb35479f7d85",
    "STS/STS16-en-test/STS.input.plagiarism.txt":
        "dd4ca54d1dfcd7d1cabe67f0de98cde23f4c1696ecc0003afbecae1274305d63",
    "STS/STS16-en-test/STS.gs.plagiarism.txt":
        "29984944a91aaff484f2b2e5d4d434fc8a6f5ef6f578a880cccd2786f5142fdc",
    "STS/STS16-en-test/STS.input.postediting.txt":
        "9b455d8da1d1bae692d038da1d431827d23bfec04c64b109efc3b6b620fd422f",
    "STS/STS16-en-test/STS.gs.postediting.txt":
        "81947ed9dbe7f85b7bd249df68ed5c7b2f16f06390ad568eb5554b1e26bc5577",
    "STS/STS16-en-test/STS.input.question-question.txt":
        "58920c7da7dbc1b860609310782d88b7457d599c90a226819b5880262dd7f58a",
    "STS/STS16-en-test/STS.gs.question-question.txt":
        "cf9ebf9d140191f73620cda0560947ad9283c910735d0d541b8a401a5e64afb0",
    "STS/STSBenchmark/sts-train.csv":
        "4fc4924edd059a43e9c7c8927a72cb8061a87ef98afdf2026a0e0b540b458693",
    "STS/STSBenchmark/sts-dev.csv":
        "c558fa95fec006608f13e3d942f153b614beabccbf33e64f36418d406a895e37",
    "STS/STSBenchmark/sts-test.csv":
        "22ef3e10603b6655d7c7978c8eee26e7d5291dd5a71c5531b934fb025c108cbf",
    "SICK/SICK_train.txt":
        "e02bd30f17ab87358f80ef079a6ef797acd244c3c7515de454301c7c257e410c",
    "SICK/SICK_trial.txt":
        "0d0786bd8671a0a70614f2f890b8ab24b3c24d1ccb624bcca87618091fbe4f11",
    "SICK/SICK_test_annotated.txt":
        "d0362afe8304c8d08166b82d76da2a8c665d5b635ac1f3f1ee82054511749f97",
}
