"""``fhir-server rules check``: the shipped sets, a region's new file, a broken one."""

from __future__ import annotations

import json

from fhir_server.cli import main


def test_shipped_rule_sets_check(capsys):
    assert main(["rules", "check"]) == 0
    out = capsys.readouterr().out
    assert "gansu: 14 rules" in out and "applies to: 甘肃省" in out
    assert "national: 14 rules (10 error, 4 warning/information); applies to: default" in out


def test_a_regional_file_and_a_broken_one(tmp_path, capsys):
    (tmp_path / "sichuan.json").write_text(json.dumps({
        "id": "sichuan", "extends": "national", "title": {"zh": "四川省", "en": "Sichuan"},
        "match": {"state": ["四川省"]}, "parameters": {"responseHours": 12},
        "rules": [{"id": "first-contact", "enabled": False}]}, ensure_ascii=False), encoding="utf-8")
    assert main(["rules", "check", str(tmp_path)]) == 0
    assert "sichuan: 13 rules" in capsys.readouterr().out
    assert main(["rules", "check", str(tmp_path), "--show", "sichuan"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["parameters"]["responseHours"] == 12 and shown["parameters"]["longPrescription"]["maxWeeks"] == 12

    (tmp_path / "broken.json").write_text(json.dumps({"id": "broken", "title": {"zh": "坏"}, "rules": []}),
                                          encoding="utf-8")
    assert main(["rules", "check", str(tmp_path)]) == 1
    assert "broken.json" in capsys.readouterr().out


def test_rule_directories_from_the_environment(tmp_path, monkeypatch):
    from fhir_server.config import Settings
    from fhir_server.referral import rule_directories

    monkeypatch.setenv("FHIR_REFERRAL_RULES", str(tmp_path))
    monkeypatch.setenv("FHIR_SUBSCRIPTION_RETRY_DELAYS", "0.5,2,10")
    settings = Settings.from_env()
    assert rule_directories(settings)[-1] == tmp_path
    assert settings.extra["subscription_retry_delays"] == [0.5, 2.0, 10.0]
