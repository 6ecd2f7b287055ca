# METADATA
# title: Tests of sde.project
# description: Run by the real OPA (opa test policies -v); never loaded into regopy.
package sde.project_test

import data.sde.project

vote(voter, decision, kind) := {
	"voter": voter,
	"decision": decision,
	"board_member": true,
	"kind": kind,
	"banned": false,
	"conflicts": [],
}

board := [
	vote("b-lay", "approve", "lay"),
	vote("b-clin", "approve", "clinical"),
	vote("b-dpo", "reject", "data_protection"),
]

# A complete commercial application, published, comment period over, quorate, 2 of 3 approve.
base := {
	"now": "2025-06-01T12:00:00Z",
	"settings": {},
	"application": {
		"id": "prj-1",
		"status": "published",
		"purpose": "research",
		"uses": ["health_research"],
		"sponsor_type": "commercial",
		"sponsor_banned": false,
		"legal_basis": "s251_support",
		"national_opt_out_applies": true,
		"summary_given": true,
		"public_benefit_given": true,
		"benefit_sharing_given": true,
		"exclusive_access": false,
		"start_date": "2025-07-01",
		"end_date": "2027-06-30",
		"comment_period_ends": "2025-06-01T11:59:59Z",
		"datasets": [
			{"name": "events", "columns": [
				{"name": "event_date", "justified": true},
				{"name": "code", "justified": true},
			]},
			{"name": "patients", "columns": [{"name": "sex", "justified": true}]},
		],
	},
	"votes": board,
}

with_application(changes) := object.union(base, {"application": changes})

with_votes(votes) := object.union(base, {"votes": votes})

refused_with(doc, reason) if {
	not project.allow with input as doc
	reason in project.deny with input as doc
}

# --- allowed ---------------------------------------------------------------------

test_complete_quorate_application_allowed if {
	project.allow with input as base
	count(project.deny) == 0 with input as base
}

test_non_commercial_sponsor_needs_no_benefit_sharing if {
	every sponsor in ["nhs", "academic", "charity"] {
		project.allow with input as with_application({"sponsor_type": sponsor, "benefit_sharing_given": false})
	}
}

test_comment_period_ending_now_allows if {
	project.allow with input as with_application({"comment_period_ends": "2025-06-01T12:00:00Z"})
}

test_opt_out_set_aside_with_consent_or_legal_requirement if {
	every basis in ["consent", "legal_requirement"] {
		project.allow with input as with_application({"legal_basis": basis, "national_opt_out_applies": false})
	}
}

test_planning_allowed if {
	project.allow with input as with_application({"purpose": "planning"})
}

test_more_votes_than_the_minimum if {
	votes := array.concat(board, [vote("b-lay-2", "approve", "lay"), vote("b-5", "reject", "clinical")])
	project.allow with input as with_votes(votes)
}

# --- refused: the application ----------------------------------------------------

test_empty_input_refused if {
	not project.allow with input as {}
	"the application is not known" in project.deny with input as {}
	"the time of the decision is missing or not UTC (YYYY-MM-DDTHH:MM:SSZ)" in project.deny with input as {}
	"the application has no public comment period on record" in project.deny with input as {}
	"0 counted votes; the quorum needs at least 3" in project.deny with input as {}
}

test_not_published_refused if {
	every status in ["draft", "approved", "rejected", "suspended", "closed"] {
		refused_with(
			with_application({"status": status}),
			sprintf("project prj-1 has status %s; only an application published for comment can be approved", [status]),
		)
	}
}

test_comment_period_open_refused if {
	refused_with(
		with_application({"comment_period_ends": "2025-06-01T12:00:01Z"}),
		"the public comment period runs until 2025-06-01T12:00:01Z",
	)
	refused_with(
		with_application({"comment_period_ends": "2025-06-29T12:00:00Z"}),
		"the public comment period runs until 2025-06-29T12:00:00Z",
	)
}

test_no_comment_period_refused if {
	reason := "the application has no public comment period on record"
	refused_with(with_application({"comment_period_ends": null}), reason)
	refused_with(json.remove(base, ["application/comment_period_ends"]), reason)
	refused_with(with_application({"comment_period_ends": "2025-06-01"}), reason)
	refused_with(with_application({"comment_period_ends": "2025-06-01T11:00:00+00:00"}), reason)
}

test_bad_time_refused if {
	reason := "the time of the decision is missing or not UTC (YYYY-MM-DDTHH:MM:SSZ)"
	refused_with(json.remove(base, ["now"]), reason)
	refused_with(object.union(base, {"now": "2025-06-01"}), reason)
	refused_with(object.union(base, {"now": 1748779200}), reason)
}

test_purpose_refused if {
	refused_with(with_application({"purpose": "direct_care"}), "the purpose direct_care is not research or planning")
	refused_with(json.remove(base, ["application/purpose"]), "the purpose (missing or not text) is not research or planning")
}

test_every_red_line_refused_whatever_the_votes if {
	unanimous := array.concat(
		[vote("b-lay", "approve", "lay"), vote("b-clin", "approve", "clinical")],
		[vote("b-dpo", "approve", "data_protection")],
	)
	every use, line in {
		"marketing": "marketing",
		"advertising": "marketing",
		"insurance_pricing": "insurance",
		"underwriting": "insurance",
		"immigration_enforcement": "immigration enforcement",
		"deportation": "immigration enforcement",
		"benefit_eligibility": "assessing benefits",
		"assessing_benefits": "assessing benefits",
		"policing": "policing",
		"law_enforcement": "policing",
	} {
		refused_with(
			object.union(with_votes(unanimous), {"application": {"uses": ["health_research", use]}}),
			sprintf("red line: patient data may never be used for %s", [line]),
		)
	}
}

test_red_line_as_purpose_refused if {
	doc := with_application({"purpose": "policing"})
	refused_with(doc, "red line: patient data may never be used for policing")
	refused_with(doc, "the purpose policing is not research or planning")
}

test_two_red_lines_both_named if {
	doc := with_application({"uses": ["marketing", "insurance"]})
	not project.allow with input as doc
	project.deny == {
		"red line: patient data may never be used for marketing",
		"red line: patient data may never be used for insurance",
	} with input as doc
}

test_harmless_uses_are_not_red_lines if {
	project.allow with input as with_application({"uses": ["health_research", "insurance_status_as_covariate_research", "service_planning"]})
}

test_missing_statements_refused if {
	refused_with(with_application({"summary_given": false}), "the application has no plain-language summary")
	refused_with(json.remove(base, ["application/summary_given"]), "the application has no plain-language summary")
	refused_with(with_application({"public_benefit_given": false}), "the application states no public benefit")
	refused_with(with_application({"public_benefit_given": "yes"}), "the application states no public benefit")
}

test_commercial_without_benefit_sharing_refused if {
	refused_with(with_application({"benefit_sharing_given": false}), "a commercial sponsor needs benefit-sharing terms")
	refused_with(json.remove(base, ["application/benefit_sharing_given"]), "a commercial sponsor needs benefit-sharing terms")
}

test_exclusive_access_refused_for_every_sponsor if {
	every sponsor in ["nhs", "academic", "charity", "commercial"] {
		refused_with(
			with_application({"sponsor_type": sponsor, "exclusive_access": true}),
			"no project may have exclusive access to the data",
		)
	}
	refused_with(json.remove(base, ["application/exclusive_access"]), "no project may have exclusive access to the data")
	refused_with(with_application({"exclusive_access": null}), "no project may have exclusive access to the data")
}

test_unknown_sponsor_type_refused if {
	refused_with(with_application({"sponsor_type": "pharma"}), "the sponsor type pharma is not nhs, academic, charity or commercial")
}

test_banned_sponsor_refused if {
	refused_with(with_application({"sponsor_banned": true}), "the sponsor organisation is banned")
	refused_with(json.remove(base, ["application/sponsor_banned"]), "the sponsor organisation is banned")
}

test_legal_basis_refused if {
	refused_with(
		with_application({"legal_basis": "legitimate_interest"}),
		"the legal basis legitimate_interest is not consent, s251_support, legal_requirement or public_task",
	)
	refused_with(
		with_application({"legal_basis": null}),
		"the legal basis (missing or not text) is not consent, s251_support, legal_requirement or public_task",
	)
}

test_opt_out_set_aside_without_grounds_refused if {
	every basis in ["s251_support", "public_task"] {
		refused_with(
			with_application({"legal_basis": basis, "national_opt_out_applies": false}),
			sprintf("the national data opt-out can only be set aside for consent or a legal requirement, not %s", [basis]),
		)
	}
	refused_with(
		with_application({"national_opt_out_applies": null}),
		"the application does not state whether the national data opt-out applies",
	)
	not project.opt_out_handled with input as with_application({"national_opt_out_applies": "no"})
}

test_datasets_refused if {
	refused_with(with_application({"datasets": []}), "the application asks for no datasets")
	refused_with(with_application({"datasets": "events"}), "the application asks for no datasets")
	refused_with(with_application({"datasets": [{"name": "events", "columns": []}]}), "dataset events lists no columns")
	refused_with(with_application({"datasets": [{"name": "events"}]}), "dataset events lists no columns")
	refused_with(with_application({"datasets": ["events"]}), "dataset (missing or not text) lists no columns")
}

test_every_column_needs_a_justification if {
	doc := with_application({"datasets": [{"name": "events", "columns": [
		{"name": "event_date", "justified": true},
		{"name": "code", "justified": false},
		{"name": "value"},
		"free_text",
	]}]})
	not project.allow with input as doc
	project.deny == {
		"column events.code has no justification",
		"column events.value has no justification",
		"column events.(missing or not text) has no justification",
	} with input as doc
}

test_dates_refused if {
	reason := "the application needs a start date and a later end date"
	refused_with(with_application({"start_date": null}), reason)
	refused_with(json.remove(base, ["application/end_date"]), reason)
	refused_with(with_application({"end_date": "2025-07-01"}), reason)
	refused_with(with_application({"end_date": "2025-06-30"}), reason)
	refused_with(with_application({"start_date": "1 July 2025"}), reason)
}

# --- refused: the board ----------------------------------------------------------

test_too_few_votes_refused if {
	refused_with(with_votes(array.slice(board, 0, 2)), "2 counted votes; the quorum needs at least 3")
	refused_with(with_votes([]), "0 counted votes; the quorum needs at least 3")
	refused_with(json.remove(base, ["votes"]), "0 counted votes; the quorum needs at least 3")
	refused_with(with_votes("b-lay"), "0 counted votes; the quorum needs at least 3")
}

test_min_votes_from_settings if {
	doc := object.union(base, {"settings": {"min_votes": 5}})
	refused_with(doc, "3 counted votes; the quorum needs at least 5")
	every bad in [0, -1, 2.5, "3", null] {
		refused_with(
			object.union(base, {"settings": {"min_votes": bad}}),
			"the min_votes setting must be a whole number of at least 1",
		)
	}
}

test_each_kind_needed if {
	refused_with(
		with_votes([vote("b-1", "approve", "clinical"), vote("b-2", "approve", "clinical"), vote("b-3", "approve", "data_protection")]),
		"no lay (patient or public) member cast a counted vote",
	)
	refused_with(
		with_votes([vote("b-1", "approve", "lay"), vote("b-2", "approve", "lay"), vote("b-3", "approve", "data_protection")]),
		"no clinical member cast a counted vote",
	)
	refused_with(
		with_votes([vote("b-1", "approve", "lay"), vote("b-2", "approve", "clinical"), vote("b-3", "approve", null)]),
		"no data protection member cast a counted vote",
	)
}

test_conflicted_vote_does_not_count if {
	conflicted := object.union(vote("b-lay", "approve", "lay"), {"conflicts": ["declared"]})
	doc := with_votes([conflicted, vote("b-clin", "approve", "clinical"), vote("b-dpo", "approve", "data_protection")])
	refused_with(doc, "2 counted votes; the quorum needs at least 3")
	refused_with(doc, "no lay (patient or public) member cast a counted vote")
	every reason in ["project_member", "sponsor_organisation"] {
		other := object.union(vote("b-lay", "approve", "lay"), {"conflicts": [reason]})
		refused_with(
			with_votes([other, vote("b-clin", "approve", "clinical"), vote("b-dpo", "approve", "data_protection")]),
			"no lay (patient or public) member cast a counted vote",
		)
	}
}

test_conflicted_majority_does_not_decide if {
	# Two conflicted approvals would make a majority if they counted.
	votes := [
		vote("b-lay", "reject", "lay"),
		vote("b-clin", "reject", "clinical"),
		vote("b-dpo", "approve", "data_protection"),
		object.union(vote("b-x", "approve", "lay"), {"conflicts": ["declared"]}),
		object.union(vote("b-y", "approve", "clinical"), {"conflicts": ["sponsor_organisation"]}),
	]
	refused_with(with_votes(votes), "1 of 3 counted votes approve; more than half must")
}

test_banned_non_board_and_malformed_votes_do_not_count if {
	every bad in [
		object.union(vote("b-lay", "approve", "lay"), {"banned": true}),
		object.union(vote("b-lay", "approve", "lay"), {"board_member": false}),
		json.remove(vote("b-lay", "approve", "lay"), ["banned"]),
		json.remove(vote("b-lay", "approve", "lay"), ["conflicts"]),
		object.union(vote("b-lay", "approve", "lay"), {"conflicts": "none"}),
		object.union(vote("b-lay", "approve", "lay"), {"voter": ""}),
	] {
		refused_with(
			with_votes([bad, vote("b-clin", "approve", "clinical"), vote("b-dpo", "approve", "data_protection")]),
			"2 counted votes; the quorum needs at least 3",
		)
	}
}

test_tie_is_not_a_majority if {
	votes := array.concat(board, [vote("b-4", "reject", "lay")])
	refused_with(with_votes(votes), "2 of 4 counted votes approve; more than half must")
}

test_majority_reject_refused if {
	votes := [vote("b-lay", "reject", "lay"), vote("b-clin", "reject", "clinical"), vote("b-dpo", "approve", "data_protection")]
	refused_with(with_votes(votes), "1 of 3 counted votes approve; more than half must")
}

test_unknown_vote_refused if {
	votes := array.concat(board, [vote("b-4", "abstain", "lay")])
	refused_with(with_votes(votes), "the vote of b-4 is neither approve nor reject")
}

# --- each positive fact refuses on its own ----------------------------------------

test_positive_facts_hold_for_base if {
	project.published with input as base
	project.comment_period_over with input as base
	project.no_red_line with input as base
	project.commercial_terms_met with input as base
	project.every_column_justified with input as base
	project.quorate with input as base
	project.majority_approves with input as base
}

test_positive_facts_fail_on_their_refusal if {
	not project.published with input as with_application({"status": "draft"})
	not project.comment_period_over with input as with_application({"comment_period_ends": "2025-07-01T00:00:00Z"})
	not project.no_red_line with input as with_application({"uses": ["policing"]})
	not project.commercial_terms_met with input as with_application({"benefit_sharing_given": false})
	not project.commercial_terms_met with input as with_application({"sponsor_type": null})
	not project.every_column_justified with input as with_application({"datasets": [{"name": "e", "columns": [{"name": "c"}]}]})
	not project.every_column_justified with input as with_application({"datasets": [{"name": "e", "columns": []}]})
	not project.quorate with input as with_votes(array.slice(board, 0, 2))
	not project.majority_approves with input as with_votes([])
	not project.sponsor_not_banned with input as with_application({"sponsor_banned": true})
	not project.dates_valid with input as with_application({"end_date": "2025-07-01"})
}
