# METADATA
# title: Access to a project
# description: |
#   Can this person do this action on this project now? Safe people (accredited,
#   not banned) on a safe project (approved, in date), reading only what the
#   project's approval names. The input is built by
#   sde.domain.policy.make_access_input; see docs/policies.md.
#   Undefined means deny: allow needs every positive fact below and no deny reason,
#   so a missing or malformed input field never allows.
package sde.access

# METADATA
# title: Actions this policy decides
actions := {"open_workspace", "read_dataset", "build_extract"}

# METADATA
# title: Allowed
# description: No deny reason, and every positive fact holds.
default allow := false

allow if {
	count(deny) == 0
	action_known
	today_known
	person_known
	accredited
	not_banned
	acts_for_project
	project_known
	project_approved
	project_started
	project_not_ended
	request_within_approval
}

# --- Normalised parts of the input (a part of the wrong type becomes empty) --------

person := input.person if {
	is_object(input.person)
} else := {}

project := input.project if {
	is_object(input.project)
} else := {}

request := input.request if {
	is_object(input.request)
} else := {}

approved_datasets := project.datasets if {
	is_object(project.datasets)
} else := {}

today := input.today if is_date(input.today)

# --- Positive facts ----------------------------------------------------------------

action_known if input.action in actions

today_known if today

person_known if is_id(person.id)

project_known if is_id(project.id)

# METADATA
# title: Accredited
# description: The person's accreditation runs to today or later.
accredited if {
	is_date(person.accredited_until)
	person.accredited_until >= today
}

# METADATA
# title: Not banned
# description: No ban on record, or the ban ended before today.
not_banned if object.get(person, "banned_until", null) == null

not_banned if {
	is_date(person.banned_until)
	person.banned_until < today
}

is_member if {
	person_known
	is_array(project.members)
	person.id in project.members
}

is_operator if person.role == "operator"

# METADATA
# title: Acts for the project
# description: A member of the project, or an operator building its extract.
acts_for_project if is_member

acts_for_project if {
	input.action == "build_extract"
	is_operator
}

project_approved if project.status == "approved"

project_started if object.get(project, "start_date", null) == null

project_started if {
	is_date(project.start_date)
	project.start_date <= today
}

project_not_ended if object.get(project, "end_date", null) == null

project_not_ended if {
	is_date(project.end_date)
	today <= project.end_date
}

# The approved columns of the requested dataset (undefined when not approved).
approved_columns := columns if {
	is_string(request.dataset)
	columns := approved_datasets[request.dataset]
	is_array(columns)
}

columns_named if {
	is_array(request.columns)
	count(request.columns) > 0
}

# METADATA
# title: Within the approval
# description: |
#   Opening a workspace or building the extract asks for nothing more; reading a
#   dataset needs an approved dataset and only approved columns.
request_within_approval if input.action in {"open_workspace", "build_extract"}

request_within_approval if {
	input.action == "read_dataset"
	columns_named
	cols := approved_columns
	every column in request.columns {
		column in cols
	}
}

# --- Deny reasons ------------------------------------------------------------------

# METADATA
# title: No action
# custom:
#   id: access.no_action
deny contains "the request names no action" if not is_string(object.get(input, "action", null))

# METADATA
# title: Unknown action
# custom:
#   id: access.unknown_action
deny contains msg if {
	is_string(input.action)
	not action_known
	msg := sprintf("action %s is not one of build_extract, open_workspace, read_dataset", [input.action])
}

# METADATA
# title: No date
# custom:
#   id: access.no_date
deny contains "today's date is missing or not an ISO date (YYYY-MM-DD)" if not today_known

# METADATA
# title: Unknown person
# custom:
#   id: access.unknown_person
deny contains "the person is not known" if not person_known

# METADATA
# title: Accreditation expired
# custom:
#   id: access.accreditation_expired
deny contains msg if {
	person_known
	is_date(person.accredited_until)
	person.accredited_until < today
	msg := sprintf("the accreditation of person %s expired on %s", [person.id, person.accredited_until])
}

# METADATA
# title: Not accredited
# custom:
#   id: access.not_accredited
deny contains msg if {
	person_known
	not is_date(object.get(person, "accredited_until", null))
	msg := sprintf("person %s has no accreditation on record", [person.id])
}

# METADATA
# title: Banned
# custom:
#   id: access.banned
deny contains msg if {
	person_known
	is_date(person.banned_until)
	person.banned_until >= today
	msg := sprintf("person %s is banned until %s", [person.id, person.banned_until])
}

# METADATA
# title: Ban unreadable
# description: A ban whose end date cannot be read counts as a ban.
# custom:
#   id: access.ban_unreadable
deny contains msg if {
	person_known
	object.get(person, "banned_until", null) != null
	not is_date(person.banned_until)
	msg := sprintf("person %s has a ban on record with an unreadable end date", [person.id])
}

# METADATA
# title: Unknown project
# custom:
#   id: access.unknown_project
deny contains "the project is not known" if not project_known

# METADATA
# title: Not a member
# custom:
#   id: access.not_a_member
deny contains msg if {
	person_known
	project_known
	not acts_for_project
	input.action != "build_extract"
	msg := sprintf("person %s is not a member of project %s", [person.id, project.id])
}

# METADATA
# title: Neither member nor operator
# custom:
#   id: access.neither_member_nor_operator
deny contains msg if {
	person_known
	project_known
	not acts_for_project
	input.action == "build_extract"
	msg := sprintf("person %s is neither a member of project %s nor an operator", [person.id, project.id])
}

# METADATA
# title: Project not approved
# custom:
#   id: access.project_not_approved
deny contains msg if {
	project_known
	not project_approved
	msg := sprintf(
		"project %s has status %s, not approved",
		[project.id, text_field(project, "status")],
	)
}

# METADATA
# title: Project not started
# custom:
#   id: access.project_not_started
deny contains msg if {
	project_known
	is_date(project.start_date)
	project.start_date > today
	msg := sprintf("project %s starts on %s", [project.id, project.start_date])
}

# METADATA
# title: Project ended
# custom:
#   id: access.project_ended
deny contains msg if {
	project_known
	is_date(project.end_date)
	project.end_date < today
	msg := sprintf("project %s ended on %s", [project.id, project.end_date])
}

# METADATA
# title: Project dates unreadable
# custom:
#   id: access.project_dates_unreadable
deny contains msg if {
	project_known
	some field in ["start_date", "end_date"]
	object.get(project, field, null) != null
	not is_date(project[field])
	msg := sprintf("the %s of project %s is not an ISO date (YYYY-MM-DD)", [field, project.id])
}

# METADATA
# title: No dataset named
# custom:
#   id: access.no_dataset_named
deny contains "the request names no dataset" if {
	input.action == "read_dataset"
	not is_id(object.get(request, "dataset", null))
}

# METADATA
# title: Dataset not approved
# custom:
#   id: access.dataset_not_approved
deny contains msg if {
	input.action == "read_dataset"
	project_known
	is_id(request.dataset)
	not approved_columns
	msg := sprintf("dataset %s is not approved for project %s", [request.dataset, project.id])
}

# METADATA
# title: No columns named
# custom:
#   id: access.no_columns_named
deny contains "the request names no columns" if {
	input.action == "read_dataset"
	not columns_named
}

# METADATA
# title: Column not approved
# custom:
#   id: access.column_not_approved
deny contains msg if {
	input.action == "read_dataset"
	project_known
	cols := approved_columns
	is_array(request.columns)
	some column in request.columns
	not column in cols
	msg := sprintf(
		"column %s of dataset %s is not approved for project %s",
		[label(column), request.dataset, project.id],
	)
}

# --- Functions ---------------------------------------------------------------------

# METADATA
# title: ISO date
# description: A string YYYY-MM-DD (compared as text; regopy cannot parse RFC 3339 Z).
is_date(x) if {
	is_string(x)
	regex.match(`^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$`, x)
}

is_id(x) if {
	is_string(x)
	x != ""
}

# METADATA
# title: Label
# description: A value as text for a message (sprintf of non-text differs between engines).
label(x) := x if {
	is_string(x)
} else := "(missing or not text)"

# METADATA
# title: Text field
# description: A field of an object as text for a message, whatever the object holds.
text_field(obj, key) := obj[key] if {
	is_object(obj)
	is_string(obj[key])
} else := "(missing or not text)"
