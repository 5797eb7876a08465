import pytest

import platform_core as pc

KINDS = {
    pc.BadInputError: (400, "bad_input"),
    pc.SettingsError: (400, "bad_input"),
    pc.UnauthorizedError: (401, "unauthorized"),
    pc.ForbiddenError: (403, "forbidden"),
    pc.NotFoundError: (404, "not_found"),
    pc.ConflictError: (409, "conflict"),
    pc.OverBudgetError: (413, "over_budget"),
    pc.CorruptDataError: (500, "corrupt_data"),
    pc.UnavailableError: (503, "unavailable"),
}


@pytest.mark.parametrize(("cls", "expected"), KINDS.items())
def test_every_kind_maps_to_status_and_json(cls, expected):
    err = cls("dataset 'salse' not found", name="salse")
    assert isinstance(err, pc.PlatformError)
    assert (err.status, err.kind) == expected
    assert err.to_dict() == {
        "error": "dataset 'salse' not found",
        "type": expected[1],
        "details": {"name": "salse"},
    }
    assert str(err) == "dataset 'salse' not found"


def test_body_without_details_has_only_error_and_type():
    assert pc.NotFoundError("gone").to_dict() == {"error": "gone", "type": "not_found"}
