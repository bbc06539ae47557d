"""fhir-server convert / mllp / serve --mllp-port, as the mappings README shows them."""

import json

from fhir_server.cli import main, parser
from tests.mapping.conftest import SAMPLES


def test_convert_one_file_prints_the_bundle(capsys):
    assert main(["convert", str(SAMPLES / "ref_i12_gbk.hl7"), "--encoding", "gb18030"]) == 0
    bundle = json.loads(capsys.readouterr().out)
    assert bundle["type"] == "transaction"
    patient = next(e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
    assert patient["name"][0]["text"] == "李玕"


def test_convert_many_files_prints_one_bundle_per_line_and_a_progress_bar(capsys, tmp_path):
    broken = tmp_path / "broken.hl7"
    broken.write_bytes(b"MSH|^~\\&|X")
    files = [str(SAMPLES / "ref_i12_gbk.hl7"), str(SAMPLES / "adt_a01_gbk.hl7"), str(broken)]
    assert main(["convert", *files]) == 1
    captured = capsys.readouterr()
    assert [json.loads(line)["type"] for line in captured.out.splitlines()] == ["transaction", "transaction"]
    assert "3/3 failed 1" in captured.err and "broken.hl7" in captured.err


def test_convert_commit_writes_through_the_repository(capsys, tmp_path):
    assert main(["convert", "--commit", "--data-dir", str(tmp_path), str(SAMPLES / "adt_a01_gbk.hl7")]) == 0
    assert "MSA|AA|SD20261125000001" in capsys.readouterr().out
    assert main(["convert", "--commit", "--data-dir", str(tmp_path), str(SAMPLES / "adt_a01_gbk.hl7")]) == 0
    assert "already processed" in capsys.readouterr().out


def test_mllp_and_serve_options():
    args = parser().parse_args(["mllp", "--port", "2575", "--encoding", "gb18030"])
    assert args.port == 2575 and args.encoding == "gb18030"
    args = parser().parse_args(["serve", "--mllp-port", "2575"])
    assert args.mllp_port == 2575 and callable(args.func)
