# METADATA
# title: Tests of sde.egress
# description: Run by the real OPA (opa test policies -v); never loaded into regopy.
package sde.egress_test

import data.sde.egress

sha_a := "1111111111111111111111111111111111111111111111111111111111111111"

sha_b := "abcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcdefabcd"

table := {
	"name": "table1.csv",
	"sha256": sha_a,
	"checks": [
		{"name": "dominance", "status": "pass"},
		{"name": "small_numbers", "status": "pass"},
	],
	"rows": 10,
	"cells": 20,
}

figure := {
	"name": "figure1.csv",
	"sha256": sha_b,
	"checks": [{"name": "small_numbers", "status": "pass"}],
	"rows": 5,
	"cells": 5,
}

# An approved request with two files, every check passed, two independent approvals.
base := {
	"settings": {},
	"budget": {"rows_limit": 100, "cells_limit": 200, "rows_used": 50, "cells_used": 100},
	"request": {
		"id": "rr-1",
		"author": "r-ada",
		"status": "approved",
		"project_status": "approved",
		"files": [table, figure],
		"reviews": [
			{"reviewer": "c-1", "decision": "approve"},
			{"reviewer": "c-2", "decision": "approve"},
		],
	},
}

with_request(changes) := object.union(base, {"request": changes})

with_files(files) := with_request({"files": files})

with_reviews(reviews) := with_request({"reviews": reviews})

approve(reviewer) := {"reviewer": reviewer, "decision": "approve"}

reject(reviewer) := {"reviewer": reviewer, "decision": "reject"}

refused_with(doc, reason) if {
	not egress.allow with input as doc
	reason in egress.deny with input as doc
}

# --- allowed ---------------------------------------------------------------------

test_two_independent_approvals_allow if {
	egress.allow with input as base
	count(egress.deny) == 0 with input as base
}

test_settings_absent_default_to_two if {
	egress.allow with input as json.remove(base, ["settings"])
	refused_with(
		json.remove(with_reviews([approve("c-1")]), ["settings"]),
		"the release request has 1 of the 2 independent approvals required",
	)
}

test_three_required_three_given_allow if {
	doc := object.union(
		with_reviews([approve("c-1"), approve("c-2"), approve("c-3")]),
		{"settings": {"approvals_required": 3}},
	)
	egress.allow with input as doc
}

test_one_required_one_given_allow if {
	doc := object.union(with_reviews([approve("c-1")]), {"settings": {"approvals_required": 1}})
	egress.allow with input as doc
}

# --- refused: the request ----------------------------------------------------------

test_empty_input_refused if {
	not egress.allow with input as {}
	egress.deny == {
		"the release request has status (missing or not text), not approved",
		"the release request has no files",
		"the release request has no author on record",
		"the release request has 0 of the 2 independent approvals required",
		"the project of the release request is not known",
		"the project's egress budget or the files' row and cell counts are not known",
	} with input as {}
}

test_suspended_or_closed_project_freezes_release if {
	every status in ["suspended", "closed", "published", "draft", "rejected"] {
		refused_with(
			with_request({"project_status": status}),
			sprintf("the project of the release request is %s, not approved: its releases are frozen", [status]),
		)
	}
}

test_project_status_missing_refused if {
	reason := "the project of the release request is not known"
	refused_with(json.remove(base, ["request/project_status"]), reason)
	refused_with(with_request({"project_status": null}), reason)
	refused_with(with_request({"project_status": 7}), reason)
	not egress.project_approved with input as with_request({"project_status": "suspended"})
}

test_not_approved_refused if {
	every status in ["draft", "submitted", "in_review", "returned", "rejected", "withdrawn", "released"] {
		refused_with(
			with_request({"status": status}),
			sprintf("the release request has status %s, not approved", [status]),
		)
	}
}

test_no_files_refused if {
	refused_with(with_files([]), "the release request has no files")
	refused_with(json.remove(base, ["request/files"]), "the release request has no files")
	refused_with(with_files("table1.csv"), "the release request has no files")
}

# --- refused: the files ------------------------------------------------------------

test_failed_check_refused if {
	failing := object.union(table, {"checks": [
		{"name": "dominance", "status": "pass"},
		{"name": "small_numbers", "status": "fail"},
	]})
	doc := with_files([failing, figure])
	not egress.allow with input as doc
	egress.deny == {"check small_numbers on file table1.csv did not pass (status fail), and no exception was asked for"} with input as doc
}

test_check_without_status_refused if {
	broken := object.union(figure, {"checks": [{"name": "small_numbers"}]})
	refused_with(
		with_files([table, broken]),
		"check small_numbers on file figure1.csv did not pass (status (missing or not text)), and no exception was asked for",
	)
}

test_only_pass_passes if {
	every state in ["warn", "error", "skipped", "PASS", "passed"] {
		doc := with_files([object.union(figure, {"checks": [{"name": "small_numbers", "status": state}]})])
		refused_with(doc, sprintf("check small_numbers on file figure1.csv did not pass (status %s), and no exception was asked for", [state]))
	}
}

test_file_without_checks_refused if {
	reason := "file figure1.csv has no automatic checks"
	refused_with(with_files([table, object.union(figure, {"checks": []})]), reason)
	refused_with(with_files([table, json.remove(figure, ["checks"])]), reason)
	refused_with(with_files([table, object.union(figure, {"checks": "pass"})]), reason)
}

test_file_without_checksum_refused if {
	reason := "file figure1.csv has no SHA-256 checksum"
	refused_with(with_files([table, json.remove(figure, ["sha256"])]), reason)
	refused_with(with_files([table, object.union(figure, {"sha256": null})]), reason)
	refused_with(with_files([table, object.union(figure, {"sha256": "abc"})]), reason)
	refused_with(with_files([table, object.union(figure, {"sha256": upper(sha_b)})]), reason)
}

test_unnamed_file_refused if {
	refused_with(with_files([{"sha256": sha_a}]), "file (unnamed) has no automatic checks")
}

# --- refused: the reviews ----------------------------------------------------------

test_one_approval_refused if {
	refused_with(
		with_reviews([approve("c-1")]),
		"the release request has 1 of the 2 independent approvals required",
	)
}

test_no_reviews_refused if {
	refused_with(with_reviews([]), "the release request has 0 of the 2 independent approvals required")
	refused_with(
		json.remove(base, ["request/reviews"]),
		"the release request has 0 of the 2 independent approvals required",
	)
}

test_same_checker_counts_once if {
	refused_with(
		with_reviews([approve("c-1"), approve("c-1")]),
		"the release request has 1 of the 2 independent approvals required",
	)
}

test_author_approval_refused if {
	doc := with_reviews([approve("c-1"), approve("c-2"), approve("r-ada")])
	not egress.allow with input as doc
	egress.deny == {"the author r-ada cannot approve their own release request"} with input as doc
}

test_author_approval_does_not_count if {
	doc := with_reviews([approve("c-1"), approve("r-ada")])
	not egress.allow with input as doc
	egress.deny == {
		"the author r-ada cannot approve their own release request",
		"the release request has 1 of the 2 independent approvals required",
	} with input as doc
}

test_no_author_refused if {
	refused_with(json.remove(base, ["request/author"]), "the release request has no author on record")
	refused_with(with_request({"author": ""}), "the release request has no author on record")
}

test_rejection_refused if {
	doc := with_reviews([approve("c-1"), approve("c-2"), reject("c-3")])
	not egress.allow with input as doc
	egress.deny == {"reviewer c-3 rejected the release request"} with input as doc
}

test_rejection_without_a_named_reviewer_refused if {
	doc := with_reviews([approve("c-1"), approve("c-2"), {"decision": "reject"}])
	not egress.allow with input as doc
	not egress.no_rejections with input as doc
	egress.deny == {"reviewer (missing or not text) rejected the release request"} with input as doc
}

test_unknown_decision_refused if {
	refused_with(
		with_reviews([approve("c-1"), approve("c-2"), {"reviewer": "c-3", "decision": "maybe"}]),
		"the review by c-3 has a decision that is neither approve nor reject",
	)
	refused_with(
		with_reviews([approve("c-1"), approve("c-2"), {"reviewer": "c-3"}]),
		"the review by c-3 has a decision that is neither approve nor reject",
	)
}

# --- refused: the settings ---------------------------------------------------------

test_invalid_approvals_required_refused if {
	reason := "the approvals_required setting must be a whole number of at least 1"
	every value in [0, -1, 1.5, "2", null, true] {
		refused_with(object.union(base, {"settings": {"approvals_required": value}}), reason)
	}
}

test_more_approvals_required_refused if {
	refused_with(
		object.union(base, {"settings": {"approvals_required": 3}}),
		"the release request has 2 of the 3 independent approvals required",
	)
}

# --- each positive fact refuses on its own (allow needs them even with no deny) ----

test_positive_facts_hold_for_base if {
	egress.request_approved with input as base
	egress.has_files with input as base
	egress.all_files_passed_checks with input as base
	egress.all_files_hashed with input as base
	egress.approvals_required_valid with input as base
	egress.enough_approvals with input as base
	egress.author_known with input as base
	egress.author_did_not_approve with input as base
	egress.no_rejections with input as base
	egress.all_decisions_known with input as base
}

test_positive_facts_fail_on_their_refusal if {
	not egress.request_approved with input as with_request({"status": "in_review"})
	not egress.has_files with input as with_files([])
	failing := object.union(figure, {"checks": [{"name": "small_numbers", "status": "fail"}]})
	not egress.all_files_passed_checks with input as with_files([table, failing])
	not egress.all_files_passed_checks with input as with_files([table, object.union(figure, {"checks": []})])
	not egress.all_files_hashed with input as with_files([table, json.remove(figure, ["sha256"])])
	not egress.approvals_required_valid with input as object.union(base, {"settings": {"approvals_required": 0}})
	not egress.enough_approvals with input as with_reviews([approve("c-1"), approve("r-ada")])
	not egress.author_known with input as with_request({"author": null})
	not egress.author_did_not_approve with input as with_reviews([approve("c-1"), approve("c-2"), approve("r-ada")])
	not egress.no_rejections with input as with_reviews([approve("c-1"), approve("c-2"), reject("c-3")])
	not egress.all_decisions_known with input as with_reviews([approve("c-1"), approve("c-2"), {"reviewer": "c-3"}])
}

# --- review, exceptions and blocking rules ------------------------------------------

with_check(name, status) := object.union(table, {"checks": [{"name": name, "status": status}]})

test_review_status_released_with_approvals if {
	egress.allow with input as with_files([with_check("zero", "review"), figure])
}

test_blocking_review_is_not_enough if {
	refused_with(
		with_files([with_check("row_level", "review"), figure]),
		"check row_level on file table1.csv did not pass (status review), and no exception can release it",
	)
}

test_exception_releases_an_exceptionable_fail if {
	excepted := object.union(with_check("threshold", "fail"), {"exception": true})
	egress.allow with input as with_files([excepted, figure])
}

test_blank_exception_is_no_exception if {
	every justification in [false, "yes", "true", 1, null] {
		excepted := object.union(with_check("threshold", "fail"), {"exception": justification})
		refused_with(
			with_files([excepted, figure]),
			"check threshold on file table1.csv did not pass (status fail), and no exception was asked for",
		)
	}
}

test_exception_cannot_release_a_blocking_fail if {
	every rule in ["row_level", "pseudonyms", "identifiers", "file_type", "dates_of_birth", "free_text", "figure_table"] {
		excepted := object.union(with_check(rule, "fail"), {"exception": true})
		refused_with(
			with_files([excepted, figure]),
			sprintf("check %s on file table1.csv did not pass (status fail), and no exception can release it", [rule]),
		)
	}
}

# --- the cumulative egress budget ---------------------------------------------------

test_budget_exactly_used_up_allows if {
	doc := object.union(base, {"budget": {"rows_limit": 65, "cells_limit": 125, "rows_used": 50, "cells_used": 100}})
	egress.allow with input as doc
}

test_budget_rows_exceeded_refused if {
	doc := object.union(base, {"budget": {"rows_limit": 64, "cells_limit": 125, "rows_used": 50, "cells_used": 100}})
	refused_with(
		doc,
		"releasing 15 rows and 25 cells would exceed the project's egress budget (50 of 64 rows and 100 of 125 cells released so far)",
	)
}

test_budget_cells_exceeded_refused if {
	doc := object.union(base, {"budget": {"rows_limit": 65, "cells_limit": 124, "rows_used": 50, "cells_used": 100}})
	not egress.allow with input as doc
}

test_budget_missing_or_malformed_refused if {
	reason := "the project's egress budget or the files' row and cell counts are not known"
	refused_with(json.remove(base, ["budget"]), reason)
	refused_with(object.union(base, {"budget": {"rows_limit": "many", "cells_limit": 1, "rows_used": 0, "cells_used": 0}}), reason)
	refused_with(object.union(base, {"budget": {"rows_limit": 100, "cells_limit": 200, "rows_used": -1, "cells_used": 0}}), reason)
	refused_with(with_files([json.remove(table, ["rows"]), figure]), reason)
}
