"""UnitDirectory: reading the directory CSV, names and aliases, current units and the duties prior."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest

from model.aliases import load_aliases
from model.units import DEFAULT_UNITS, UnitDirectory, UnitDirectoryError, blend_with_prior

_ROWS = [
    (
        "市教育局",
        "市教委|教育局",
        "市级",
        "负责学前教育、义务教育、学校布局、教师队伍、课后服务和校车安全。",
        "1",
        "",
    ),
    (
        "市卫生健康委员会",
        "市卫健委、市卫生计生委",
        "市级",
        "负责医院建设、疾病预防控制、家庭医生和妇幼健康。",
        "是",
        "",
    ),
    ("市水利局", "", "市级", "负责河道整治、防汛抗旱、水库灌区和农村饮水安全。", "", ""),
    # No past proposals anywhere in the tests below: only its duties can suggest it.
    (
        "市人民防空办公室",
        "市人防办",
        "市级",
        "负责人防工程建设和平战结合利用、防空警报试鸣和疏散演练。",
        "1",
        "",
    ),
    (
        "市乡村振兴局",
        "市扶贫办",
        "市级",
        "已并入市农业农村局。原负责驻村帮扶和防止返贫监测。",
        "0",
        "市农业农村局",
    ),
    (
        "市农业农村局",
        "",
        "市级",
        "负责高标准农田、种业、农产品质量安全、驻村帮扶和防止返贫监测。",
        "1",
        "",
    ),
]


def _write(
    path: Path, rows, header=("name", "aliases", "level", "duties", "active", "successor")
) -> Path:
    with open(path, "w", encoding="utf-8", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


@pytest.fixture
def directory(tmp_path: Path) -> UnitDirectory:
    return UnitDirectory.load(_write(tmp_path / "units.csv", _ROWS))


def test_names_aliases_and_current_units(directory: UnitDirectory) -> None:
    assert directory.names() == [
        "市教育局",
        "市卫生健康委员会",
        "市水利局",
        "市人民防空办公室",
        "市农业农村局",
    ]
    assert "市乡村振兴局" in directory.names(include_inactive=True)
    assert directory.canonical("市教委") == "市教育局"  # aliases split on |
    assert directory.canonical("市 卫健委") == "市卫生健康委员会"  # and on 、, stray spaces ignored
    assert directory.canonical("市不存在局") is None
    assert directory.is_current("市人防办")
    assert not directory.is_current("市乡村振兴局")
    assert not directory.is_current("市不存在局")
    assert directory.current("市扶贫办") == "市农业农村局"  # alias → inactive unit → successor
    assert directory.duties("市教委") is not None and "课后服务" in directory.duties("市教委")
    assert directory.duties("市不存在局") is None
    assert directory.level("市水利局") == "市级"


def test_prior_lets_a_unit_without_past_proposals_win(directory: UnitDirectory) -> None:
    units = ["市教育局", "市卫生健康委员会", "市水利局", "市人民防空办公室", "市农业农村局"]
    texts = [
        "关于加快老旧人防工程平战结合利用、改建为社区地下停车场的建议",
        "关于增加学校课后服务和校车安全管理的建议",
        "关于加强河道整治和防汛工作的建议",
    ]
    prior = directory.prior(texts, units)
    assert prior.shape == (3, 5)
    np.testing.assert_allclose(prior.sum(axis=1), 1.0)
    assert [units[j] for j in prior.argmax(axis=1)] == ["市人民防空办公室", "市教育局", "市水利局"]


def test_prior_floors_units_not_current_or_not_listed(directory: UnitDirectory) -> None:
    units = ["市乡村振兴局", "市教育局", "市某某局", "市教委"]
    prior = directory.prior(["关于驻村帮扶和防止返贫监测、教师队伍建设的建议"], units)
    np.testing.assert_allclose(prior.sum(axis=1), 1.0)
    # Inactive and unknown units keep only the floor, however well the text matches them.
    assert prior[0, 0] < 1e-3 and prior[0, 2] < 1e-3
    # An alias column is scored as its unit.
    assert prior[0, 3] == pytest.approx(prior[0, 1])
    assert directory.prior([], units).shape == (0, 4)


def test_sharper_temperature_concentrates_the_prior(directory: UnitDirectory) -> None:
    units = directory.names()
    text = ["关于学校教师队伍建设的建议"]
    soft = directory.prior(text, units, temperature=1.0)
    sharp = directory.prior(text, units, temperature=0.01)
    assert sharp.max() > soft.max()


def test_chinese_headers_and_gb18030(tmp_path: Path) -> None:
    path = tmp_path / "units.csv"
    with open(path, "w", encoding="gb18030", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["名称", "别名", "层级", "职责", "有效"])
        writer.writerow(["市教育局", "市教委", "市级", "负责学校和教师。", "是"])
        writer.writerow(["市水利局", "", "市级", "负责河道和防汛。", "否"])
    directory = UnitDirectory.load(path)
    assert directory.names() == ["市教育局"]
    assert not directory.is_current("市水利局")


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([("", "", "市级", "职责", "1", "")], r"row 2, column name: empty unit name"),
        ([("市甲局", "", "市级", "", "1", "")], r"row 2, column duties: 市甲局 has no duties text"),
        ([("市甲局", "", "", "职责", "也许", "")], r"row 2, column active: '也许' is not"),
        (
            [("市甲局", "", "", "职责", "1", ""), ("市甲局", "", "", "职责", "1", "")],
            r"row 3, column name: 市甲局 is already listed on row 2",
        ),
        (
            [("市甲局", "甲局", "", "职责", "1", ""), ("市乙局", "甲局", "", "职责", "1", "")],
            r"市乙局, column aliases: 甲局 is also an alias of 市甲局",
        ),
        (
            [("市甲局", "市乙局", "", "职责", "1", ""), ("市乙局", "", "", "职责", "1", "")],
            r"市甲局, column aliases: 市乙局 is itself a listed unit",
        ),
        (
            [("市甲局", "", "", "职责", "0", "市丙局")],
            r"row 2, column successor: 市丙局 is not a listed unit",
        ),
    ],
)
def test_bad_rows_are_named(tmp_path: Path, rows, message: str) -> None:
    with pytest.raises(UnitDirectoryError, match=message):
        UnitDirectory.load(_write(tmp_path / "bad.csv", rows))


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    rows = [("", "", "", "职责", "1", ""), ("市甲局", "", "", "", "1", "")]
    with pytest.raises(UnitDirectoryError) as info:
        UnitDirectory.load(_write(tmp_path / "bad.csv", rows))
    assert "row 2" in str(info.value) and "row 3" in str(info.value)


def test_missing_file_and_columns(tmp_path: Path) -> None:
    with pytest.raises(UnitDirectoryError, match="not found"):
        UnitDirectory.load(tmp_path / "none.csv")
    with pytest.raises(UnitDirectoryError, match="missing column"):
        UnitDirectory.load(_write(tmp_path / "cols.csv", [("市甲局",)], header=("name",)))


def test_shipped_directory_covers_the_demo_and_agrees_with_the_alias_map() -> None:
    directory = UnitDirectory.load(DEFAULT_UNITS)
    demo = Path(DEFAULT_UNITS).parent / "demo" / "proposals.csv"
    with open(demo, encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    used = {r["主办单位"] for r in rows} | {u for r in rows for u in r["协办单位"].split("、") if u}
    assert used <= set(directory.names(include_inactive=True))
    # Units with no past proposals exist, so the prior is what can suggest them.
    assert set(directory.names()) - used
    aliases = load_aliases()
    for name in directory.names(include_inactive=True):
        current = aliases.canonical(name)
        if current != name:  # the alias map renames it: the directory must agree it is gone
            assert not directory.is_current(name)
            assert directory.current(name) == current
    for unit in directory.units.values():
        for alias in unit.aliases:
            mapped = aliases.canonical(alias)
            if mapped != alias:  # an old name: both files must lead to the same current unit
                assert directory.current(alias) == mapped


def test_blend_backs_off_to_the_prior_for_a_unit_without_rows(directory: UnitDirectory) -> None:
    units = ["市教育局", "市卫生健康委员会", "市水利局", "市人民防空办公室"]
    counts = [40, 30, 20, 0]  # no past proposal for the civil-air-defence office
    text = ["关于老旧人防工程平战结合利用、改建为地下停车场并定期试鸣防空警报的建议"]
    prior = directory.prior(text, units)
    classifier = np.array([[0.5, 0.3, 0.2, 0.0]])  # it cannot know a unit it never saw
    plain = 0.8 * classifier + 0.2 * prior
    blended = blend_with_prior(classifier, prior, counts, 0.2)
    np.testing.assert_allclose(blended.sum(axis=1), 1.0)
    assert plain.argmax() == 0  # the plain pool keeps the unseen unit down...
    assert blended.argmax() == 3  # ...backing off lets its duties speak for it


def test_blend_is_the_linear_pool_when_every_unit_has_rows() -> None:
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(4), size=5)
    prior = rng.dirichlet(np.ones(4), size=5)
    np.testing.assert_allclose(
        blend_with_prior(probs, prior, [3, 1, 8, 2], 0.3), 0.7 * probs + 0.3 * prior
    )
    # kappa: units with few rows lean on the prior more than units with many.
    soft = blend_with_prior(probs, prior, [1000, 1, 1000, 1000], 0.0, kappa=5.0)
    assert abs(soft[:, 1] - prior[:, 1]).mean() < abs(probs[:, 1] - prior[:, 1]).mean()
    with pytest.raises(ValueError, match="shapes differ"):
        blend_with_prior(probs, prior, [1, 2], 0.3)
    with pytest.raises(ValueError, match="weight"):
        blend_with_prior(probs, prior, [1, 1, 1, 1], 1.5)


def test_weight_zero_backs_off_after_any_other_blend() -> None:
    blended = np.array([[0.6, 0.3, 0.08, 0.02]])  # e.g. a log-linear blend; unit 3 unseen
    prior = np.array([[0.1, 0.1, 0.1, 0.7]])
    out = blend_with_prior(blended, prior, [5, 5, 5, 0], 0.0)
    np.testing.assert_allclose(out[0, :3], blended[0, :3] / (0.98 + 0.7))
    assert out[0, 3] == pytest.approx(0.7 / 1.68)
    assert out.argmax() == 3
    np.testing.assert_allclose(blend_with_prior(blended, prior, [5, 5, 5, 1], 0.0), blended)
