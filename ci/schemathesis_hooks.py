"""Hooks of ci/schemathesis.sh.

`cursor` is an opaque keyset position that only the server can issue (a
`pagination.next_cursor` of the same listing, for the same sort): any other value is a 422
naming `cursor`, as the document says. No JSON Schema can describe "a token this server
issued", so generated requests carry no cursor (or an empty one, which means none).

A `task_id` that is a reserved id (`list`, `counts`) is the path of another endpoint: the
document refuses it (`not`), and the server cannot tell `GET /v1/tasks/counts` meant as "the
task counts" (refused) from the counts endpoint (answered). Generated requests name no such
task; tests/api check that creates and paths refuse them where they can.
"""

RESERVED_TASK_IDS = {"list", "counts"}

import schemathesis


def _without_cursor(query):
    if not query:
        return True
    values = [query]
    values.extend(v for v in query.values() if isinstance(v, dict))
    return not any(v.get("cursor") for v in values)


@schemathesis.hook
def filter_case(ctx, case):
    # A case, not a query hook: the coverage phase builds cases without the query strategies.
    if (case.path_parameters or {}).get("task_id") in RESERVED_TASK_IDS:
        return False
    return _without_cursor(case.query)
