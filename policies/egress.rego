# METADATA
# title: Release from the airlock
# description: |
#   Can this release request be released? Safe outputs: an approved request of an
#   approved project (a suspended project's releases are frozen) whose every file
#   has a checksum and automatic checks that passed, or asked for a human review, or
#   failed a disclosure rule for which the researcher asked for an exception (never a
#   blocking rule such as row-level data), with enough independent approvals (each
#   approver approved every file), none from the author, no rejection, and within the
#   project's cumulative egress budget of rows and cells. The input is built by
#   sde.domain.policy.make_egress_input; see docs/policies.md.
#   Undefined means deny: allow needs every positive fact below and no deny reason,
#   so a missing or malformed input field never allows.
package sde.egress

# METADATA
# title: Approvals required when the settings do not say
default_approvals_required := 2

# METADATA
# title: Allowed
# description: No deny reason, and every positive fact holds.
default allow := false

allow if {
	count(deny) == 0
	request_approved
	project_approved
	has_files
	all_files_passed_checks
	all_files_hashed
	approvals_required_valid
	enough_approvals
	author_known
	author_did_not_approve
	no_rejections
	all_decisions_known
	within_budget
}

# --- Normalised parts of the input (a part of the wrong type becomes empty) --------

settings := input.settings if {
	is_object(input.settings)
} else := {}

request := input.request if {
	is_object(input.request)
} else := {}

files := request.files if {
	is_array(request.files)
} else := []

reviews := request.reviews if {
	is_array(request.reviews)
} else := []

approvals_required := object.get(settings, "approvals_required", default_approvals_required)

budget := input.budget if {
	is_object(input.budget)
} else := {}

# METADATA
# title: Blocking rules
# description: |
#   Checks that no exception can override: the file is not a safe kind of output at
#   all (wrong type or size, unreadable, row-level data, project pseudonyms, dates of
#   birth, free text, identifiers found by the scan, a figure without its table).
blocking_rules := {
	"file_type", "file_size", "readable", "row_level", "pseudonyms",
	"dates_of_birth", "free_text", "identifiers", "figure_table",
	"count_columns", "counts_are_whole_numbers", "sdc_metadata",
}

author := request.author if is_id(request.author)

# METADATA
# title: Approvers
# description: Distinct reviewers who approved.
approvers contains review.reviewer if {
	some review in reviews
	review.decision == "approve"
	is_id(review.reviewer)
}

# Rejecting reviews, whoever (or whatever) names the reviewer.
rejections := [review |
	some review in reviews
	review.decision == "reject"
]

# The author as a set: empty when the request names no author.
authors contains name if name := author

# METADATA
# title: Independent approvers
# description: Approvers other than the author.
independent_approvers := approvers - authors

# --- Positive facts ----------------------------------------------------------------

request_approved if request.status == "approved"

# METADATA
# title: Project approved
# description: Only an approved project's outputs leave; suspended or closed freezes them.
project_approved if request.project_status == "approved"

has_files if count(files) > 0

all_files_passed_checks if {
	every file in files {
		checks_acceptable(file)
	}
}

all_files_hashed if {
	every file in files {
		hashed(file)
	}
}

# METADATA
# title: Valid approvals setting
# description: A whole number of at least 1; anything else fails closed.
approvals_required_valid if {
	is_number(approvals_required)
	approvals_required >= 1
	floor(approvals_required) == approvals_required
}

enough_approvals if {
	approvals_required_valid
	count(independent_approvers) >= approvals_required
}

author_known if author

author_did_not_approve if {
	author_known
	not author in approvers
}

no_rejections if count(rejections) == 0

# METADATA
# title: Budget valid
# description: The project's limits and what it has already released, as numbers.
budget_valid if {
	every key in ["rows_limit", "cells_limit", "rows_used", "cells_used"] {
		is_number(budget[key])
		budget[key] >= 0
	}
	every file in files {
		is_number(file.rows)
		is_number(file.cells)
	}
}

request_rows := sum([file.rows |
	some file in files
	is_number(file.rows)
])

request_cells := sum([file.cells |
	some file in files
	is_number(file.cells)
])

within_budget if {
	budget_valid
	budget.rows_used + request_rows <= budget.rows_limit
	budget.cells_used + request_cells <= budget.cells_limit
}

all_decisions_known if {
	every review in reviews {
		decision_known(review)
	}
}

# --- Deny reasons ------------------------------------------------------------------

# METADATA
# title: Not approved
# custom:
#   id: egress.not_approved
deny contains msg if {
	not request_approved
	msg := sprintf(
		"the release request has status %s, not approved",
		[text_field(request, "status")],
	)
}

# METADATA
# title: Project not approved
# custom:
#   id: egress.project_not_approved
deny contains msg if {
	is_id(request.project_status)
	not project_approved
	msg := sprintf(
		"the project of the release request is %s, not approved: its releases are frozen",
		[request.project_status],
	)
}

# METADATA
# title: Project unknown
# custom:
#   id: egress.project_unknown
deny contains "the project of the release request is not known" if {
	not is_id(object.get(request, "project_status", null))
}

# METADATA
# title: No files
# custom:
#   id: egress.no_files
deny contains "the release request has no files" if not has_files

# METADATA
# title: File without checks
# custom:
#   id: egress.file_without_checks
deny contains msg if {
	some file in files
	not has_checks(file)
	msg := sprintf("file %s has no automatic checks", [file_name(file)])
}

# METADATA
# title: Blocking check failed
# custom:
#   id: egress.blocking_check_failed
deny contains msg if {
	some file in files
	has_checks(file)
	some check in file.checks
	not check_passed(check)
	not check_reviewable(check)
	blocking_check(check)
	msg := sprintf(
		"check %s on file %s did not pass (status %s), and no exception can release it",
		[text_field(check, "name"), file_name(file), text_field(check, "status")],
	)
}

# METADATA
# title: Check not passed
# custom:
#   id: egress.check_not_passed
deny contains msg if {
	some file in files
	has_checks(file)
	some check in file.checks
	not check_passed(check)
	not check_reviewable(check)
	not blocking_check(check)
	not has_exception(file)
	msg := sprintf(
		"check %s on file %s did not pass (status %s), and no exception was asked for",
		[text_field(check, "name"), file_name(file), text_field(check, "status")],
	)
}

# METADATA
# title: No checksum
# custom:
#   id: egress.no_checksum
deny contains msg if {
	some file in files
	not hashed(file)
	msg := sprintf("file %s has no SHA-256 checksum", [file_name(file)])
}

# METADATA
# title: Approvals setting invalid
# custom:
#   id: egress.approvals_setting_invalid
deny contains msg if {
	not approvals_required_valid
	msg := "the approvals_required setting must be a whole number of at least 1"
}

# METADATA
# title: Too few approvals
# custom:
#   id: egress.too_few_approvals
deny contains msg if {
	approvals_required_valid
	count(independent_approvers) < approvals_required
	msg := sprintf(
		"the release request has %d of the %d independent approvals required",
		[count(independent_approvers), approvals_required],
	)
}

# METADATA
# title: No author
# custom:
#   id: egress.no_author
deny contains "the release request has no author on record" if not author_known

# METADATA
# title: Author approved
# custom:
#   id: egress.author_approved
deny contains msg if {
	author in approvers
	msg := sprintf("the author %s cannot approve their own release request", [author])
}

# METADATA
# title: Rejected
# custom:
#   id: egress.rejected
deny contains msg if {
	some review in rejections
	msg := sprintf("reviewer %s rejected the release request", [text_field(review, "reviewer")])
}

# METADATA
# title: Unknown review decision
# custom:
#   id: egress.unknown_review_decision
deny contains msg if {
	some review in reviews
	not decision_known(review)
	msg := sprintf(
		"the review by %s has a decision that is neither approve nor reject",
		[text_field(review, "reviewer")],
	)
}

# METADATA
# title: Budget unknown
# custom:
#   id: egress.budget_unknown
deny contains msg if {
	not budget_valid
	msg := "the project's egress budget or the files' row and cell counts are not known"
}

# METADATA
# title: Budget exceeded
# custom:
#   id: egress.budget_exceeded
deny contains msg if {
	budget_valid
	not within_budget
	msg := sprintf(
		"releasing %d rows and %d cells would exceed the project's egress budget (%d of %d rows and %d of %d cells released so far)",
		[
			request_rows, request_cells, budget.rows_used, budget.rows_limit,
			budget.cells_used, budget.cells_limit,
		],
	)
}

# --- Functions ---------------------------------------------------------------------

has_checks(file) if {
	is_array(file.checks)
	count(file.checks) > 0
}

check_passed(check) if check.status == "pass"

# A check of a rule no exception can override. (A function, so that a check without a
# name is simply not blocking, where `not check.name in blocking_rules` would be hoisted.)
blocking_check(check) if check.name in blocking_rules

# A check that asks for a human look: the approvals already required give it one.
check_reviewable(check) if {
	check.status == "review"
	not blocking_check(check)
}

# The researcher asked for an exception, with a justification, for this file (the
# justification itself stays in the control plane; the input says only true).
has_exception(file) if file.exception == true

# A check that passed, asks for review, or failed a rule the researcher asked to except.
check_acceptable(_, check) if check_passed(check)

check_acceptable(_, check) if check_reviewable(check)

check_acceptable(file, check) if {
	check.status == "fail"
	not blocking_check(check)
	has_exception(file)
}

hashed(file) if is_sha256(file.sha256)

decision_known(review) if review.decision in {"approve", "reject"}

# METADATA
# title: Checks acceptable
# description: |
#   The file has at least one automatic check, and every one passed, asks for review,
#   or failed an exceptionable rule for which an exception was asked.
checks_acceptable(file) if {
	has_checks(file)
	every check in file.checks {
		check_acceptable(file, check)
	}
}

file_name(file) := file.name if {
	is_id(file.name)
} else := "(unnamed)"

is_sha256(x) if {
	is_string(x)
	regex.match(`^[0-9a-f]{64}$`, x)
}

is_id(x) if {
	is_string(x)
	x != ""
}

# METADATA
# title: Text field
# description: A field of an object as text for a message, whatever the object holds.
text_field(obj, key) := obj[key] if {
	is_object(obj)
	is_string(obj[key])
} else := "(missing or not text)"
