"""Convert + commit: the same validation and rules as REST, duplicates by MSH-10, ACK codes, nothing stored on error."""

import json

from fhir_server.app import build_repository
from fhir_server.config import Settings
from fhir_server.formats.json import loads
from fhir_server.mapping.hl7v2.parser import parse_message
from fhir_server.mapping.ingest import Ingestor
from tests.mapping.conftest import sample
from tests.mapping.messages import adt_a04

REFERRAL_TASK = "https://fhir.referral.cn/ig/sid/hl7v2/referral-task|ZZ2026112300001"


def _count(repository, resource_type: str, query: str = "") -> int:
    with repository.store.session() as session:
        return len(repository.find(session, resource_type, query))


def _ack(outcome):
    return parse_message(outcome.ack)


def test_referral_is_committed_and_acknowledged_after_commit(repository, converter):
    ingestor = Ingestor(repository, converter)
    outcome = ingestor.ingest_v2(sample("ref_i12_gbk.hl7"))
    assert outcome.code == "AA", outcome.text
    ack = _ack(outcome)
    assert ack.first("MSA").get(1) == "AA" and ack.first("MSA").get(2) == "QX20261123000001"
    assert ack.msh.get(9, 1) == "ACK" and ack.msh.get(3) == "REFPLAT" and ack.msh.get(5) == "HIS"
    assert ack.msh.get(18) == "GB 18030-2000"
    # ACK ERR segments carry the warnings (severity W), e.g. the unmapped PV1-7
    assert any(e.get(4) == "W" and "PV1-7" in e.get(8) for e in ack.all("ERR"))
    assert _count(repository, "ServiceRequest") == 1 and _count(repository, "Task") == 1
    assert _count(repository, "Patient", "identifier=urn:oid:2.16.156.10011.1.3|622101199001011234") == 1


def test_resend_with_the_same_control_id_is_acknowledged_not_applied(repository, converter, tmp_path):
    ingestor = Ingestor(repository, converter)
    raw = sample("ref_i12_gbk.hl7")
    assert ingestor.ingest_v2(raw).code == "AA"
    with repository.store.session() as session:
        version = repository.find(session, "Task", "identifier=" + REFERRAL_TASK)[0].version
    again = ingestor.ingest_v2(raw)
    assert again.code == "AA" and again.duplicate and "already processed" in _ack(again).first("MSA").get(3)
    # a new process on the same store still knows the message
    restarted = Ingestor(build_repository(Settings(data_dir=tmp_path)), converter)
    assert restarted.ingest_v2(raw).duplicate
    with repository.store.session() as session:
        assert repository.find(session, "Task", "identifier=" + REFERRAL_TASK)[0].version == version


def test_same_patient_from_two_messages_converges(repository, converter):
    ingestor = Ingestor(repository, converter)
    assert ingestor.ingest_v2(sample("ref_i12_gbk.hl7")).code == "AA"
    assert ingestor.ingest_v2(sample("ref_i12_utf8.hl7")).code == "AA"  # other MSH-10, same referral
    assert ingestor.ingest_v2(sample("adt_a01_gbk.hl7")).code == "AA"  # other hospital, same national ID
    assert _count(repository, "Patient") == 1 and _count(repository, "ServiceRequest") == 1
    assert _count(repository, "Task") == 1 and _count(repository, "Basic") == 3


def test_rri_moves_the_task_through_the_workflow(repository, converter):
    ingestor = Ingestor(repository, converter)
    assert ingestor.ingest_v2(sample("ref_i12_gbk.hl7")).code == "AA"
    outcome = ingestor.ingest_v2(sample("rri_i12_utf8.hl7"))
    assert outcome.code == "AA", outcome.text
    with repository.store.session() as session:
        [task] = repository.find(session, "Task", "identifier=" + REFERRAL_TASK)
        history, _ = session.history("Task", task.id)
    body = loads(task.body)
    assert body["status"] == "accepted" and body["businessStatus"]["coding"][0]["code"] == "accepted"
    assert body["note"] == [{"text": "已安排心内科门诊，请患者携带既往检查资料"}]
    assert body["for"]["reference"].startswith("Patient/")  # untouched by the patch
    assert [loads(h.body)["status"] for h in history][:2] == ["accepted", "received"]


def test_rri_for_an_unknown_referral_is_rejected_with_ae(repository, converter):
    outcome = Ingestor(repository, converter).ingest_v2(sample("rri_i12_utf8.hl7"))
    assert outcome.code == "AE"
    err = _ack(outcome).first("ERR")
    assert err.get(3, 1) == "204" and err.get(4) == "E"
    assert _count(repository, "Basic") == 0


def test_business_rule_failure_is_ae_and_nothing_is_stored(repository, converter):
    text = sample("ref_i12_utf8.hl7").decode("utf-8").replace("|20261123091500", "")  # no consent
    outcome = Ingestor(repository, converter).ingest_v2(text.encode("utf-8"))
    assert outcome.code == "AE" and "consent" in outcome.text
    assert "consent" in _ack(outcome).first("ERR").get(8)
    for resource_type in ("Patient", "ServiceRequest", "Task", "Basic", "Condition"):
        assert _count(repository, resource_type) == 0


def test_bad_input_gets_ar_or_ae(repository, converter):
    ingestor = Ingestor(repository, converter)
    cases = {
        b"garbage": ("AR", "102"),
        b"MSH|^~\\&|HIS|QXRMYY|||20261123||ZZZ^Z99|C9|P|2.5\r": ("AR", "200"),
        b"MSH|^~\\&|HIS|QXRMYY|||20261123||ADT^A99|C9|P|2.5\rPID|1||X\r": ("AR", "201"),
        b"MSH|^~\\&|HIS|QXRMYY|||20261123||ADT^A04|C9|P|9.9\rPID|1||X\r": ("AR", "203"),
        b"MSH|^~\\&|HIS|QXRMYY|||20261123||ADT^A04|C9|P|2.5\rEVN|A04\r": ("AE", "100"),
        b"MSH|^~\\&|HIS|QXRMYY|||20261123||ADT^A04|C9|P|2.5\rPID|1||X^^^GMSFZ^ID||A||19801340\r": ("AE", "102"),
        b"MSH|^~\\&|HIS|QXRMYY|||20261123||ADT^A04|C9": ("AR", "102"),
        b"MSH|^~\\&|HIS|QXRMYY|||20261123||ADT^A04|C9|P|2.5||||||UNICODE UTF-8\rPID|1||\xff\xfe\r": ("AR", "102"),
        "MSH^~\\&|HIS|QXRMYY|||20261123||ADT^A04|C9|P|2.5\rPID|1||X\r".encode(): ("AR", "102"),
    }
    for raw, (code, error) in cases.items():
        outcome = ingestor.ingest_v2(raw)
        assert outcome.code == code, (raw, outcome.text)
        ack = _ack(outcome)
        assert ack.first("MSA").get(1) == code and ack.first("ERR").get(3, 1) == error, (raw, outcome.ack)
    assert _count(repository, "Patient") == 0 and _count(repository, "Basic") == 0


def test_unreadable_message_ack_still_names_its_control_id(repository, converter):
    outcome = Ingestor(repository, converter).ingest_v2(b"MSH|^~^&|HIS|QXRMYY|||20261123||ADT^A04|C77|P|2.5\rPID|1\r")
    assert outcome.code == "AR" and _ack(outcome).first("MSA").get(2) == "C77"


def test_adt_a04_then_a08_updates_the_same_patient(repository, converter):
    ingestor = Ingestor(repository, converter)
    assert ingestor.ingest_v2(adt_a04("A1", "110101198002020021", "赵^敏", visit="V1").encode()).code == "AA"
    a08 = adt_a04("A2", "110101198002020021", "赵^敏敏", visit="V1").replace("ADT^A04^ADT_A01", "ADT^A08^ADT_A01")
    assert ingestor.ingest_v2(a08.encode()).code == "AA"
    with repository.store.session() as session:
        [patient] = repository.find(session, "Patient", "identifier=urn:oid:2.16.156.10011.1.3|110101198002020021")
        [encounter] = repository.find(session, "Encounter", "")
    assert json.loads(patient.body)["name"][0]["text"] == "赵敏敏" and patient.version == 2
    assert json.loads(encounter.body)["status"] == "in-progress"
