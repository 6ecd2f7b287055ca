# METADATA
# title: Tests of sde.access
# description: Run by the real OPA (opa test policies -v); never loaded into regopy.
package sde.access_test

import data.sde.access

# A member of an approved, in-date project reading approved columns on 2025-06-01.
base := {
	"action": "read_dataset",
	"today": "2025-06-01",
	"person": {
		"id": "r-ada",
		"role": "researcher",
		"accredited_until": "2025-12-31",
		"banned_until": null,
	},
	"project": {
		"id": "prj-1",
		"status": "approved",
		"members": ["r-ada", "r-bob"],
		"start_date": "2025-01-01",
		"end_date": "2026-12-31",
		"datasets": {"events": ["pid", "event_date", "code"], "admissions": ["pid"]},
	},
	"request": {"dataset": "events", "columns": ["pid", "code"]},
}

# base with the given fields changed (a deep merge).
with_changes(changes) := object.union(base, changes)

# The test passes when the input is refused with exactly this reason among others.
refused_with(doc, reason) if {
	not access.allow with input as doc
	reason in access.deny with input as doc
}

# --- allowed ---------------------------------------------------------------------

test_member_reads_approved_columns if {
	access.allow with input as base
	count(access.deny) == 0 with input as base
}

test_member_opens_workspace if {
	access.allow with input as with_changes({"action": "open_workspace", "request": {"dataset": null, "columns": []}})
}

test_member_builds_extract if {
	access.allow with input as with_changes({"action": "build_extract"})
}

test_operator_builds_extract_without_membership if {
	doc := with_changes({"action": "build_extract", "person": {"id": "op-1", "role": "operator"}})
	access.allow with input as doc
}

test_accreditation_ending_today_allows if {
	access.allow with input as with_changes({"person": {"accredited_until": "2025-06-01"}})
}

test_ban_that_ended_yesterday_allows if {
	access.allow with input as with_changes({"person": {"banned_until": "2025-05-31"}})
}

test_ban_field_absent_allows if {
	access.allow with input as json.remove(base, ["person/banned_until"])
}

test_first_and_last_day_of_project_allow if {
	access.allow with input as with_changes({"today": "2025-01-01", "person": {"accredited_until": "2027-01-01"}})
	access.allow with input as with_changes({"today": "2026-12-31", "person": {"accredited_until": "2027-01-01"}})
}

test_project_without_dates_allows if {
	access.allow with input as with_changes({"project": {"start_date": null, "end_date": null}})
	access.allow with input as json.remove(base, ["project/start_date", "project/end_date"])
}

# --- refused: the request ----------------------------------------------------------

test_empty_input_refused if {
	not access.allow with input as {}
	access.deny == {
		"the request names no action",
		"today's date is missing or not an ISO date (YYYY-MM-DD)",
		"the person is not known",
		"the project is not known",
	} with input as {}
}

test_unknown_action_refused if {
	refused_with(
		with_changes({"action": "delete_dataset"}),
		"action delete_dataset is not one of build_extract, open_workspace, read_dataset",
	)
}

test_missing_action_refused if {
	refused_with(json.remove(base, ["action"]), "the request names no action")
}

test_missing_or_bad_date_refused if {
	reason := "today's date is missing or not an ISO date (YYYY-MM-DD)"
	refused_with(json.remove(base, ["today"]), reason)
	refused_with(with_changes({"today": "2025-06-01T10:00:00Z"}), reason)
	refused_with(with_changes({"today": 20250601}), reason)
}

# --- refused: the person -----------------------------------------------------------

test_unknown_person_refused if {
	refused_with(with_changes({"person": null}), "the person is not known")
	refused_with(json.remove(base, ["person"]), "the person is not known")
	refused_with(with_changes({"person": {"id": ""}}), "the person is not known")
}

test_expired_accreditation_refused if {
	refused_with(
		with_changes({"person": {"accredited_until": "2025-05-31"}}),
		"the accreditation of person r-ada expired on 2025-05-31",
	)
}

test_no_accreditation_refused if {
	reason := "person r-ada has no accreditation on record"
	refused_with(json.remove(base, ["person/accredited_until"]), reason)
	refused_with(with_changes({"person": {"accredited_until": null}}), reason)
	refused_with(with_changes({"person": {"accredited_until": "31/12/2025"}}), reason)
	refused_with(with_changes({"person": {"accredited_until": "2025-13-01"}}), reason)
	refused_with(with_changes({"person": {"accredited_until": "2025-12-32"}}), reason)
}

test_accreditation_of_another_type_refused if {
	# Rego orders an array after every string: the type guard must stop it counting.
	refused_with(
		with_changes({"person": {"accredited_until": ["2099-01-01"]}}),
		"person r-ada has no accreditation on record",
	)
}

test_banned_refused if {
	refused_with(with_changes({"person": {"banned_until": "2025-06-01"}}), "person r-ada is banned until 2025-06-01")
	refused_with(with_changes({"person": {"banned_until": "2030-01-01"}}), "person r-ada is banned until 2030-01-01")
}

test_unreadable_ban_refused if {
	reason := "person r-ada has a ban on record with an unreadable end date"
	refused_with(with_changes({"person": {"banned_until": "forever"}}), reason)
	refused_with(with_changes({"person": {"banned_until": true}}), reason)
}

test_non_member_refused if {
	refused_with(
		with_changes({"person": {"id": "r-eve"}}),
		"person r-eve is not a member of project prj-1",
	)
}

test_members_of_another_type_refused if {
	refused_with(
		with_changes({"project": {"members": "r-ada"}}),
		"person r-ada is not a member of project prj-1",
	)
}

test_operator_cannot_read_without_membership if {
	refused_with(
		with_changes({"person": {"id": "op-1", "role": "operator"}}),
		"person op-1 is not a member of project prj-1",
	)
	refused_with(
		with_changes({"action": "open_workspace", "person": {"id": "op-1", "role": "operator"}}),
		"person op-1 is not a member of project prj-1",
	)
}

test_non_operator_non_member_cannot_build_extract if {
	refused_with(
		with_changes({"action": "build_extract", "person": {"id": "r-eve"}}),
		"person r-eve is neither a member of project prj-1 nor an operator",
	)
}

test_operator_must_be_accredited if {
	doc := with_changes({
		"action": "build_extract",
		"person": {"id": "op-1", "role": "operator", "accredited_until": "2024-01-01"},
	})
	refused_with(doc, "the accreditation of person op-1 expired on 2024-01-01")
}

# --- refused: the project ----------------------------------------------------------

test_unknown_project_refused if {
	refused_with(with_changes({"project": null}), "the project is not known")
	refused_with(json.remove(base, ["project"]), "the project is not known")
}

test_project_not_approved_refused if {
	every status in ["draft", "submitted", "suspended", "closed", "rejected"] {
		refused_with(
			with_changes({"project": {"status": status}}),
			sprintf("project prj-1 has status %s, not approved", [status]),
		)
	}
}

test_project_without_status_refused if {
	refused_with(
		json.remove(base, ["project/status"]),
		"project prj-1 has status (missing or not text), not approved",
	)
}

test_project_not_started_refused if {
	refused_with(with_changes({"project": {"start_date": "2025-06-02"}}), "project prj-1 starts on 2025-06-02")
}

test_project_ended_refused if {
	refused_with(with_changes({"project": {"end_date": "2025-05-31"}}), "project prj-1 ended on 2025-05-31")
}

test_unreadable_project_dates_refused if {
	refused_with(
		with_changes({"project": {"start_date": "1 Jan 2025"}}),
		"the start_date of project prj-1 is not an ISO date (YYYY-MM-DD)",
	)
	refused_with(
		with_changes({"project": {"end_date": 2026}}),
		"the end_date of project prj-1 is not an ISO date (YYYY-MM-DD)",
	)
}

# --- refused: the dataset and columns ----------------------------------------------

test_no_dataset_named_refused if {
	refused_with(with_changes({"request": {"dataset": null}}), "the request names no dataset")
	refused_with(json.remove(base, ["request"]), "the request names no dataset")
}

test_dataset_not_approved_refused if {
	refused_with(
		with_changes({"request": {"dataset": "deaths"}}),
		"dataset deaths is not approved for project prj-1",
	)
}

test_no_columns_named_refused if {
	refused_with(with_changes({"request": {"columns": []}}), "the request names no columns")
	refused_with(with_changes({"request": {"columns": "pid"}}), "the request names no columns")
}

test_column_outside_approval_refused if {
	doc := with_changes({"request": {"columns": ["pid", "code", "nhs_number", "free_text"]}})
	not access.allow with input as doc
	access.deny == {
		"column nhs_number of dataset events is not approved for project prj-1",
		"column free_text of dataset events is not approved for project prj-1",
	} with input as doc
}

test_column_of_another_dataset_refused if {
	refused_with(
		with_changes({"request": {"dataset": "admissions", "columns": ["pid", "code"]}}),
		"column code of dataset admissions is not approved for project prj-1",
	)
}

test_every_reason_given_at_once if {
	doc := with_changes({
		"person": {"accredited_until": "2025-01-01", "banned_until": "2025-07-01"},
		"project": {"status": "suspended"},
	})
	not access.allow with input as doc
	access.deny == {
		"the accreditation of person r-ada expired on 2025-01-01",
		"person r-ada is banned until 2025-07-01",
		"project prj-1 has status suspended, not approved",
	} with input as doc
}

# --- each positive fact refuses on its own (allow needs them even with no deny) ----

test_positive_facts_hold_for_base if {
	access.accredited with input as base
	access.not_banned with input as base
	access.acts_for_project with input as base
	access.project_approved with input as base
	access.project_started with input as base
	access.project_not_ended with input as base
	access.request_within_approval with input as base
}

test_positive_facts_fail_on_their_refusal if {
	not access.action_known with input as with_changes({"action": "delete_dataset"})
	not access.today_known with input as with_changes({"today": "1 June 2025"})
	not access.person_known with input as with_changes({"person": {"id": 7}})
	not access.accredited with input as with_changes({"person": {"accredited_until": "2025-05-31"}})
	not access.accredited with input as with_changes({"person": {"accredited_until": ["2099-01-01"]}})
	not access.not_banned with input as with_changes({"person": {"banned_until": "2025-06-01"}})
	not access.not_banned with input as with_changes({"person": {"banned_until": "forever"}})
	not access.acts_for_project with input as with_changes({"person": {"id": "r-eve"}})
	not access.acts_for_project with input as with_changes({"person": {"id": "op-1", "role": "operator"}})
	not access.project_known with input as with_changes({"project": {"id": ""}})
	not access.project_approved with input as with_changes({"project": {"status": "suspended"}})
	not access.project_started with input as with_changes({"project": {"start_date": "2025-06-02"}})
	not access.project_not_ended with input as with_changes({"project": {"end_date": "2025-05-31"}})
	not access.request_within_approval with input as with_changes({"request": {"columns": ["pid", "nhs_number"]}})
	not access.request_within_approval with input as with_changes({"request": {"columns": []}})
	not access.request_within_approval with input as with_changes({"request": {"dataset": "deaths"}})
}
