"""FHIR → HL7 v2: REF^I12 from a referral (round trip v2 → FHIR → v2), RRI^I12 from a Task, MLLP delivery."""

import asyncio

from fhir_server.mapping.hl7v2.parser import parse_message
from fhir_server.mapping.ingest import Ingestor
from fhir_server.mapping.mllp import MllpServer
from fhir_server.mapping.reverse import ReverseWriter, bundle_resolver, repository_resolver, send
from tests.mapping.conftest import sample


def _resources(bundle, resource_type):
    return [e["resource"] for e in bundle["entry"] if e["resource"]["resourceType"] == resource_type]


def _essentials(bundle) -> dict:
    """The values REF^I12 carries, as the forward mapping reads them."""
    [patient] = _resources(bundle, "Patient")
    [request] = _resources(bundle, "ServiceRequest")
    [task] = _resources(bundle, "Task")
    return {
        "patient.identifier": [(i["system"], i["value"]) for i in patient["identifier"]],
        "patient.name": patient["name"], "patient.birthDate": patient["birthDate"], "patient.gender": patient["gender"],
        "patient.address": patient["address"], "patient.telecom": patient["telecom"],
        "request.identifier": request["identifier"][0], "request.status": request["status"],
        "request.priority": request["priority"], "request.code": request["code"]["coding"][0]["code"],
        "request.authoredOn": request["authoredOn"], "request.occurrencePeriod": request["occurrencePeriod"],
        "request.reasonCode": [c["coding"][0]["code"] for c in request["reasonCode"]],
        "request.note": request["note"],
        "request.direction": [e["valueCoding"] for e in request["extension"] if e["url"].endswith("referral-direction")],
        "task.status": task["status"],
        "conditions": [(c["code"]["coding"][0]["system"], c["code"]["coding"][0]["code"], c["verificationStatus"]["coding"][0]["code"])
                       for c in _resources(bundle, "Condition")],
        "organizations": sorted((o["identifier"][0]["value"], o["name"]) for o in _resources(bundle, "Organization")
                                if o["identifier"][0]["system"].endswith("medical-institution-licence")),
        "consent": [c["dateTime"] for c in _resources(bundle, "Consent")],
    }


def test_ref_i12_round_trip_preserves_the_mapped_fields(library, converter):
    first = converter.convert(sample("ref_i12_gbk.hl7")).bundle
    roots = {"ServiceRequest": _resources(first, "ServiceRequest")[0], "Task": _resources(first, "Task")[0]}
    text = ReverseWriter(library).write("ref_i12_out", roots, bundle_resolver(first), receiver=("HIS", "SDYRMYY"),
                                        control_id="OUT1", charset="GB 18030-2000")
    message = parse_message(text)
    assert message.message_type[:2] == ("REF", "I12") and message.control_id == "OUT1"
    assert message.first("RF1").get(6) == "ZZ2026112300001" and message.first("RF1").get(1) == "P"
    assert message.first("PID").get(5, 1) == "李" and message.first("PID").get(8) == "M"
    again = converter.convert(text.encode("gb18030")).bundle
    assert _essentials(again) == _essentials(first)


def test_rri_i12_from_a_task_and_delivery_over_mllp(library, repository, converter):
    ingestor = Ingestor(repository, converter)
    assert ingestor.ingest_v2(sample("ref_i12_gbk.hl7")).code == "AA"
    with repository.store.session() as session:
        [task_record] = repository.find(session, "Task", "")
    from fhir_server.formats.json import loads

    task = loads(task_record.body)
    task["status"], task["note"] = "rejected", [{"text": "床位已满，建议转往省人民医院"}]
    task["statusReason"] = {"text": "床位已满"}
    text = ReverseWriter(library).write("rri_i12_out", {"Task": task}, repository_resolver(repository),
                                        receiver=("HIS", "QXRMYY"))
    message = parse_message(text)
    assert message.first("RF1").get(1) == "R" and message.first("RF1").get(6) == "ZZ2026112300001"
    assert message.first("PRD").get(4, 4, 2) == "市第一人民医院"
    assert message.first("PID").get(3) == "622101199001011234" and message.first("PID").get(3, 5) == "ID"
    assert message.first("NTE").get(3) == "床位已满，建议转往省人民医院"
    assert message.first("RF1").get(10, 2) == "床位已满"

    # the legacy receiver here is this server's own listener, answering with an ACK
    async def deliver():
        server = MllpServer(Ingestor(repository, converter), port=0)
        await server.start()
        try:
            return await asyncio.to_thread(send, text, "127.0.0.1", server.port)
        finally:
            await server.stop()

    assert asyncio.run(deliver()) == "AA"
    with repository.store.session() as session:
        [stored] = repository.find(session, "Task", "")
    assert loads(stored.body)["status"] == "rejected"  # requested → received → rejected through the workflow
