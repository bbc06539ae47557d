"""The referral journeys over HTTP: village clinic → county hospital (up) and back (down), every
transition of the Task state machine, the audit trail, and nothing written when a step is refused."""

from __future__ import annotations

import pytest

from fhir_server.referral.workflow import TASK_TRANSITIONS, acting_as
from tests.referral.conftest import FHIR_JSON, clone, created_ids, fixture, post_bundle

BS = "https://fhir.referral.cn/ig/CodeSystem/referral-business-status"
BUSINESS_FOR = {"requested": "submitted", "received": "received", "accepted": "accepted", "in-progress": "arrived",
                "completed": "completed", "rejected": "rejected", "cancelled": "cancelled", "failed": "expired",
                "draft": "submitted"}


def read(client, ref: str) -> dict:
    response = client.get(f"/{ref}")
    assert response.status_code == 200, response.text
    return response.json()


def put(client, resource: dict):
    return client.put(f"/{resource['resourceType']}/{resource['id']}", json=resource, headers=FHIR_JSON)


def post(client, resource: dict) -> dict:
    response = client.post(f"/{resource['resourceType']}", json=resource, headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    return response.json()


def moved(task: dict, status: str, code: str | None = None, **changes) -> dict:
    task = clone(task)
    task.update(status=status, businessStatus={"coding": [{"system": BS, "code": code or BUSINESS_FOR[status]}]},
                **changes)
    return task


def advance(client, task_id: str, status: str, code: str | None = None, **changes):
    return put(client, moved(read(client, f"Task/{task_id}"), status, code, **changes))


def provenance_for(client, ref: str) -> list[dict]:
    """Every Provenance whose target is a version of ``ref`` (read through history: no search needed)."""
    response = client.get("/Provenance/_history?_count=1000")
    assert response.status_code == 200, response.text
    found = [e["resource"] for e in response.json().get("entry", []) if "resource" in e
             and any(t["reference"].startswith(ref + "/_history/") for t in e["resource"]["target"])]
    return sorted(found, key=lambda p: p["target"][0]["reference"])


def encounter(request_ref: str, provider: str, origin: str) -> dict:
    return {"resourceType": "Encounter", "status": "in-progress", "period": {"start": "2026-11-21T10:00:00+08:00"},
            "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"},
            "subject": {"reference": "Patient/zhang-san"}, "basedOn": [{"reference": request_ref}],
            "serviceProvider": {"reference": provider}, "hospitalization": {"origin": {"reference": origin}},
            "reasonCode": [{"coding": [{"system": "https://fhir.referral.cn/ig/CodeSystem/icd-10-cn", "code": "I63"}]}]}


def document(title: str, loinc: str) -> dict:
    return {"resourceType": "DocumentReference", "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": loinc}], "text": title},
            "subject": {"reference": "Patient/zhang-san"},
            "content": [{"attachment": {"contentType": "text/plain", "data": "5Ye66Zmi5bCP57uT", "title": title}}]}


def send(client, name: str = "up-referral.json") -> dict[str, str]:
    response = post_bundle(client, fixture(name))
    assert response.status_code == 200, response.text
    return created_ids(response)


def bring_to(client, status: str) -> dict[str, str]:
    """A fresh up-referral whose Task is in ``status`` (reached through legal steps)."""
    ids = send(client)
    task_id, request = ids["Task"], f"ServiceRequest/{ids['ServiceRequest']}"
    path = {"requested": [], "received": ["received"], "accepted": ["received", "accepted"],
            "in-progress": ["received", "accepted", "in-progress"],
            "completed": ["received", "accepted", "in-progress", "completed"],
            "rejected": ["received", "rejected"], "cancelled": ["cancelled"]}[status]
    for step in path:
        extra = {}
        if step == "in-progress":
            post(client, encounter(request, "Organization/county-hosp", "Organization/village-a"))
        if step == "completed":
            doc = post(client, document("出院小结", "18842-5"))
            extra["output"] = [{"type": {"text": "出院小结"}, "valueReference": {"reference": f"DocumentReference/{doc['id']}"}}]
        if step == "rejected":
            extra["statusReason"] = {"text": "本院无床位"}
        response = advance(client, task_id, step, **extra)
        assert response.status_code == 200, response.text
    return ids


def test_up_and_down_referral_journey(network):
    client = network
    ids = send(client)
    task_id, request_id = ids["Task"], ids["ServiceRequest"]
    request_ref = f"ServiceRequest/{request_id}"
    task = read(client, f"Task/{task_id}")
    assert task["focus"]["reference"] == request_ref and task["status"] == "requested"

    # the county hospital's referral centre receives, accepts and books
    assert advance(client, task_id, "received").status_code == 200
    assert advance(client, task_id, "accepted").status_code == 200
    assert advance(client, task_id, "accepted", "booked").status_code == 200
    # the patient arrives: an Encounter based on the referral, then in-progress
    post(client, encounter(request_ref, "Organization/county-hosp", "Organization/village-a"))
    assert advance(client, task_id, "in-progress").status_code == 200

    # discharge: the summary and the follow-up down-referral (county hospital → village clinic) go out together
    summary = post(client, document("出院小结", "18842-5"))
    down = fixture("down-referral.json")
    down["entry"][0]["resource"]["supportingInfo"] = [{"reference": f"DocumentReference/{summary['id']}"}]
    down["entry"][0]["resource"]["basedOn"] = [{"reference": request_ref}]
    # the follow-up plan travels with the down-referral: rehabilitation at the village clinic
    plan = post(client, {"resourceType": "CarePlan", "status": "active", "intent": "plan",
                         "title": "脑梗死恢复期康复计划", "subject": {"reference": "Patient/zhang-san"},
                         "author": {"reference": "PractitionerRole/role-county-attending"},
                         "activity": [{"detail": {"status": "scheduled", "description": "每周两次康复训练，村医随访"}}]})
    down["entry"][1]["resource"]["input"] = [{"type": {"text": "随访计划 Follow-up plan"},
                                              "valueReference": {"reference": f"CarePlan/{plan['id']}"}}]
    down_ids = send_bundle(client, down)
    completed = advance(client, task_id, "completed", output=[
        {"type": {"text": "出院小结"}, "valueReference": {"reference": f"DocumentReference/{summary['id']}"}},
        {"type": {"text": "下转申请"}, "valueReference": {"reference": f"ServiceRequest/{down_ids['ServiceRequest']}"}}])
    assert completed.status_code == 200, completed.text
    # the request closes with its Task
    assert read(client, request_ref)["status"] == "completed"

    # the village clinic takes the patient back
    down_task = down_ids["Task"]
    assert read(client, f"Task/{down_task}")["input"][0]["valueReference"]["reference"] == f"CarePlan/{plan['id']}"
    down_request = f"ServiceRequest/{down_ids['ServiceRequest']}"
    for step in ("received", "accepted"):
        assert advance(client, down_task, step).status_code == 200
    post(client, encounter(down_request, "Organization/village-a", "Organization/county-hosp"))
    assert advance(client, down_task, "in-progress").status_code == 200
    note = post(client, document("随访记录", "11506-3"))
    assert advance(client, down_task, "completed", output=[
        {"type": {"text": "随访记录"}, "valueReference": {"reference": f"DocumentReference/{note['id']}"}}]).status_code == 200
    assert read(client, down_request)["status"] == "completed"

    # the audit trail: one Provenance per transition, each naming who and what changed
    trail = provenance_for(client, f"Task/{task_id}")
    assert [p["activity"]["text"] for p in trail] == [
        "created (requested)", "status requested → received; businessStatus submitted → received",
        "status received → accepted; businessStatus received → accepted", "businessStatus accepted → booked",
        "status accepted → in-progress; businessStatus booked → arrived",
        "status in-progress → completed; businessStatus arrived → completed"]
    assert trail[0]["agent"][0]["who"]["reference"] == "Organization/village-a"
    assert all(p["agent"][0]["who"]["reference"] == "Organization/county-hosp" for p in trail[1:])
    assert trail[2]["entity"][0]["what"]["reference"] == f"Task/{task_id}/_history/2"
    assert [p["activity"]["text"] for p in provenance_for(client, request_ref)] == [
        "created (active)", "status active → completed"]


def send_bundle(client, bundle: dict) -> dict[str, str]:
    response = post_bundle(client, bundle)
    assert response.status_code == 200, response.text
    return created_ids(response)


def test_request_sent_alone_gets_its_task(network):
    bundle = fixture("up-referral.json")
    response = network.post("/ServiceRequest", json=bundle["entry"][0]["resource"], headers=FHIR_JSON)
    assert response.status_code == 201, response.text
    request_id = response.json()["id"]
    tasks = [e["resource"] for e in network.get("/Task/_history").json().get("entry", []) if "resource" in e]
    assert len(tasks) == 1
    task = tasks[0]
    assert task["focus"]["reference"] == f"ServiceRequest/{request_id}"
    assert task["owner"]["reference"] == "Organization/county-hosp"
    assert task["status"] == "requested"
    # Gansu answers within 24 hours of the request being sent
    assert task["restriction"]["period"]["end"] > task["authoredOn"]
    assert len(provenance_for(network, f"Task/{task['id']}")) == 1


LEGAL = {(a, b) for a, targets in TASK_TRANSITIONS.items() if a for b in targets}
STATES = ("requested", "received", "accepted", "in-progress", "completed", "rejected", "cancelled")
ILLEGAL = [(a, b) for a in STATES for b in STATES + ("failed", "draft") if a != b and (a, b) not in LEGAL]


@pytest.mark.parametrize("current", STATES)
def test_illegal_transitions_are_refused_and_nothing_written(network, current):
    ids = bring_to(network, current)
    before = read(network, f"Task/{ids['Task']}")
    trail_before = len(provenance_for(network, f"Task/{ids['Task']}"))
    allowed = TASK_TRANSITIONS[current]
    refused = [wanted for c, wanted in ILLEGAL if c == current]
    assert refused
    for wanted in refused:
        response = put(network, moved(before, wanted, statusReason={"text": "x"}))
        assert response.status_code == 409, (wanted, response.text)
        diagnostics = response.json()["issue"][0]["diagnostics"]
        assert f"allowed from {current}: " + (", ".join(allowed) if allowed else "none") in diagnostics
    after = read(network, f"Task/{ids['Task']}")
    assert after["meta"]["versionId"] == before["meta"]["versionId"]
    assert len(provenance_for(network, f"Task/{ids['Task']}")) == trail_before


def test_terminal_task_cannot_be_edited(network):
    ids = bring_to(network, "completed")
    task = read(network, f"Task/{ids['Task']}")
    task["note"] = [{"text": "late edit"}]
    assert put(network, task).status_code == 409


def test_transition_requirements(network):
    ids = bring_to(network, "received")
    task_id = ids["Task"]
    response = advance(network, task_id, "rejected")
    assert response.status_code == 422 and "statusReason" in response.text
    assert read(network, f"Task/{task_id}")["status"] == "received"
    assert advance(network, task_id, "accepted", "booked").status_code == 200
    response = advance(network, task_id, "in-progress")
    assert response.status_code == 422 and "Encounter" in response.text
    response = advance(network, task_id, "in-progress", "booked")
    assert response.status_code == 422
    post(network, encounter(f"ServiceRequest/{ids['ServiceRequest']}", "Organization/county-hosp",
                            "Organization/village-a"))
    assert advance(network, task_id, "in-progress").status_code == 200
    response = advance(network, task_id, "completed")
    assert response.status_code == 422 and "DocumentReference" in response.text


def test_business_status_must_fit_the_status(network):
    ids = send(network)
    response = advance(network, ids["Task"], "received", "booked")
    assert response.status_code == 422 and "businessStatus" in response.text


def test_immutable_fields(network):
    ids = send(network)
    task = read(network, f"Task/{ids['Task']}")
    task["for"] = {"reference": "Patient/someone-else"}
    assert put(network, task).status_code == 409


def test_request_status_machine(network):
    ids = send(network)
    request = read(network, f"ServiceRequest/{ids['ServiceRequest']}")
    request["status"] = "draft"
    response = put(network, request)
    assert response.status_code == 409
    assert "allowed from active: on-hold, completed, revoked, entered-in-error" in response.text


def test_cancellation_revokes_the_request(network):
    ids = bring_to(network, "cancelled")
    assert read(network, f"ServiceRequest/{ids['ServiceRequest']}")["status"] == "revoked"


def test_rejected_transaction_writes_nothing(network):
    bundle = fixture("up-referral.json")
    bundle["entry"][1]["resource"]["status"] = "accepted"  # a Task cannot be born accepted
    response = post_bundle(network, bundle)
    assert response.status_code == 409
    assert network.get("/ServiceRequest/_history").json().get("total", 0) == 0
    assert network.get("/Provenance/_history").json().get("total", 0) == 0


def test_only_the_right_side_moves_the_task(app, network):
    ids = send(network)
    repository = app.state.repository
    task = read(network, f"Task/{ids['Task']}")
    with acting_as("Organization/village-a"):
        with pytest.raises(Exception) as refused:
            repository.update("Task", task["id"], moved(task, "received"))
    assert getattr(refused.value, "status", None) == 403
    with acting_as("Organization/county-hosp"):
        repository.update("Task", task["id"], moved(task, "received"))
        received = read(network, f"Task/{task['id']}")
        with pytest.raises(Exception) as refused:
            repository.update("Task", task["id"], moved(received, "cancelled"))
    assert getattr(refused.value, "status", None) == 403
    with acting_as("Organization/village-a"):
        with pytest.raises(Exception) as refused:  # booking is the receiving centre's business
            repository.update("Task", task["id"], moved(received, "received", "under-review"))
        assert getattr(refused.value, "status", None) == 403
        repository.update("Task", task["id"], moved(received, "cancelled"))
    with acting_as("Organization/county-hosp"):  # nobody sends a referral in another organisation's name
        with pytest.raises(Exception) as refused:
            repository.process_bundle(fixture("up-referral.json"))
    assert getattr(refused.value, "status", None) == 403
    trail = provenance_for(network, f"Task/{task['id']}")
    assert [p["agent"][0]["who"]["reference"] for p in trail] == [
        "Organization/village-a", "Organization/county-hosp", "Organization/village-a"]


def test_authenticated_caller_is_the_side_and_the_agent(app, network):
    from fhir_server.security.context import Caller
    from fhir_server.security.context import acting_as as authenticated

    ids = send(network)
    repository = app.state.repository
    task = read(network, f"Task/{ids['Task']}")
    village = Caller("village-his", "Organization/village-a", "PractitionerRole/role-village")
    county = Caller("county-centre", "Organization/county-hosp", "PractitionerRole/role-county-attending")
    with authenticated(village):
        with pytest.raises(Exception) as refused:
            repository.update("Task", task["id"], moved(task, "received"))
    assert getattr(refused.value, "status", None) == 403
    with authenticated(county):
        repository.update("Task", task["id"], moved(task, "received"))
    last = provenance_for(network, f"Task/{task['id']}")[-1]
    assert last["agent"][0]["who"] == {"reference": "PractitionerRole/role-county-attending"}
    assert last["agent"][0]["onBehalfOf"] == {"reference": "Organization/county-hosp"}
    # a platform administrator acts for no side
    with authenticated(Caller("platform", "Organization/platform", admin=True)):
        repository.update("Task", task["id"], moved(read(network, f"Task/{task['id']}"), "received", "under-review"))


def test_referral_centre_worklist_by_search(network):
    first, second = send(network)["Task"], send(network)["Task"]
    assert advance(network, second, "received").status_code == 200
    response = network.get("/Task", params={"owner": "Organization/county-hosp", "status": "requested",
                                            "_sort": "-authored-on"})
    assert response.status_code == 200, response.text
    assert [e["resource"]["id"] for e in response.json().get("entry", [])] == [first]
    response = network.get("/Task", params={"owner": "Organization/village-a", "status": "requested"})
    assert response.json().get("entry", []) == []


def test_audit_trail_and_open_referrals_are_not_deleted(network):
    ids = send(network)
    trail = provenance_for(network, f"Task/{ids['Task']}")
    record = trail[0]
    assert network.delete(f"/Provenance/{record['id']}").status_code == 409
    record["reason"] = [{"text": "rewritten"}]
    assert put(network, record).status_code == 409
    assert network.delete(f"/Task/{ids['Task']}").status_code == 409
    assert network.delete(f"/ServiceRequest/{ids['ServiceRequest']}").status_code == 409
    assert read(network, f"Task/{ids['Task']}")["status"] == "requested"
    # once closed, the records may be cleaned up (the Provenance stays)
    assert advance(network, ids["Task"], "cancelled").status_code == 200
    assert network.delete(f"/Task/{ids['Task']}").status_code in (200, 204)
    assert len(provenance_for(network, f"Task/{ids['Task']}")) == 2
