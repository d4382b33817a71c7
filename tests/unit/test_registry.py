"""`fitting.registry.Registry`, the one registry class: duplicates refused in one line naming
both origins, did-you-mean, listing with help, lazy discovery (package modules, a real
`importlib.metadata` entry point, an environment variable); and the five registries of
prunebench (methods, laws, profiles, model aliases, zoo families) are instances of it."""

from __future__ import annotations

import sys
import textwrap

import pytest

from fitting.registry import Registry


class Oops(ValueError):
    pass


def make(**kw) -> Registry:
    return Registry("widget", error=Oops, **kw)


def test_a_name_registered_twice_is_refused_naming_both_origins():
    reg = make()
    reg.add("bolt", 1, origin="pkg.first")
    with pytest.raises(Oops) as exc:
        reg.add("bolt", 2, origin="pkg.second")
    msg = str(exc.value)
    assert "\n" not in msg
    assert msg.startswith("widget 'bolt' of pkg.second is already registered by pkg.first")
    assert reg["bolt"] == 1 and reg.origin("bolt") == "pkg.first"


def test_the_same_entry_again_is_no_duplicate():
    reg = make()

    @reg.register("f")
    def f():
        """Does f."""

    reg.register("f")(f)  # its module imported a second time
    reg.add("n", 3, origin="a")
    reg.add("n", 3, origin="b")  # an equal value
    assert reg.names() == ["f", "n"]


def test_a_duplicate_can_have_its_own_exception_class():
    reg = Registry("law", error=Oops, duplicate_error=TypeError)
    reg.add("p2", object(), origin="a")
    with pytest.raises(TypeError, match="law 'p2' of b is already registered by a"):
        reg.add("p2", object(), origin="b")


def test_an_unknown_name_gets_did_you_mean_and_the_known_names():
    reg = make(unknown="known widgets: {known}")
    for name in ("sprocket", "gear", "cog"):
        reg.add(name, name, origin="t")
    with pytest.raises(Oops) as exc:
        reg.lookup("sprockit")
    assert str(exc.value) == "unknown widget 'sprockit' (did you mean 'sprocket'?); known widgets: cog, gear, sprocket"
    assert "sprockit" not in reg and reg.get("sprockit") is None
    with pytest.raises(KeyError):
        reg["sprockit"]


def test_listing_with_help_text():
    reg = make()

    @reg.register("magnitude")
    def by_magnitude():
        """Rank by |W|.

        More text that is not the summary."""

    reg.register("random", help="a random   baseline\nfor comparison")(lambda: None)
    reg.add("bare", 0, origin="t")
    assert reg.listing() == [("bare", ""), ("magnitude", "Rank by |W|."),
                             ("random", "a random baseline for comparison")]
    assert reg.describe() == "bare; magnitude: Rank by |W|.; random: a random baseline for comparison"
    assert reg.help("magnitude") == "Rank by |W|."


def test_remove_scratch_and_watch():
    reg = make()
    reg.add("kept", 1, origin="t")
    seen = []
    reg.watch(lambda name, entry, added: seen.append((name, entry, added)))
    with reg.scratch():
        reg.add("temp", 2, origin="t")
        reg.remove("kept")
        assert reg.names() == ["temp"]
    assert reg.names() == ["kept"] and reg["kept"] == 1
    assert seen == [("kept", 1, True), ("temp", 2, True), ("kept", 1, False), ("temp", 2, False), ("kept", 1, True)]
    reg["item"] = 5  # what monkeypatch.setitem does: an add, duplicates refused
    assert reg.origin("item") == __name__
    with pytest.raises(Oops, match="already registered"):
        reg["item"] = 6
    del reg["item"]
    assert "item" not in reg


# -- discovery ------------------------------------------------------------------------------

WIDGET_MODULE = '''
from {registry_module} import REG

@REG.register({name!r})
def widget():
    """A widget from {where}."""
'''


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A directory on sys.path holding `regtest_home.REG`, the registry the plugins fill."""
    (tmp_path / "regtest_home.py").write_text(textwrap.dedent('''
        from fitting.registry import Registry

        REG = Registry("widget", error=ValueError, packages=("regtest_pkg",),
                       group="regtest.widgets", env="REGTEST_WIDGETS")
    '''))
    pkg = tmp_path / "regtest_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "builtin.py").write_text(WIDGET_MODULE.format(registry_module="regtest_home", name="builtin",
                                                         where="the package"))
    (pkg / "_helper.py").write_text("raise RuntimeError('a helper module is not imported')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delenv("REGTEST_WIDGETS", raising=False)
    yield tmp_path
    for name in [m for m in sys.modules if m.startswith("regtest")]:
        del sys.modules[name]


def installed(root, entry_points: str) -> None:
    """A distribution's metadata as `pip install` leaves it: a dist-info directory on sys.path."""
    info = root / "regtest_plugin-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: regtest-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[regtest.widgets]\n{entry_points}\n")


def test_discovery_imports_the_package_an_entry_point_and_the_env_variable(home, monkeypatch):
    (home / "regtest_ep.py").write_text(WIDGET_MODULE.format(registry_module="regtest_home", name="plugged",
                                                            where="an entry point"))
    (home / "regtest_env.py").write_text(WIDGET_MODULE.format(registry_module="regtest_home", name="envy",
                                                             where="the environment"))
    installed(home, "plugged = regtest_ep")
    monkeypatch.setenv("REGTEST_WIDGETS", " regtest_env , ")
    from regtest_home import REG

    assert REG.names() == ["builtin", "envy", "plugged"]  # discovered on the first lookup
    assert REG.origin("plugged") == "regtest_ep" and REG.help("plugged") == "A widget from an entry point."
    REG.rediscover()
    assert REG.names() == ["builtin", "envy", "plugged"]  # found again: no duplicates


def test_an_entry_point_must_register_its_own_name(home):
    (home / "regtest_ep.py").write_text(WIDGET_MODULE.format(registry_module="regtest_home", name="other",
                                                            where="an entry point"))
    installed(home, "plugged = regtest_ep")
    from regtest_home import REG

    with pytest.raises(ValueError, match=r"entry point 'plugged' \(regtest.widgets\): module 'regtest_ep' "
                                         r"registered no widget named 'plugged'"):
        REG.names()


def test_a_plugin_that_cannot_be_imported_or_clashes_is_one_line(home, monkeypatch):
    from regtest_home import REG

    monkeypatch.setenv("REGTEST_WIDGETS", "regtest_missing")
    with pytest.raises(ValueError, match=r"\$REGTEST_WIDGETS names module 'regtest_missing', which cannot be "
                                         "imported"):
        REG.names()
    (home / "regtest_dup.py").write_text(WIDGET_MODULE.format(registry_module="regtest_home", name="builtin",
                                                             where="a clash"))
    monkeypatch.setenv("REGTEST_WIDGETS", "regtest_dup")
    with pytest.raises(ValueError, match="widget 'builtin' of regtest_dup is already registered by "
                                         "regtest_pkg.builtin"):
        REG.names()  # a failed discovery runs again at the next lookup


def test_collect_adds_what_modules_declare(home):
    (home / "regtest_decl.py").write_text("WIDGETS = {'a': 1, 'b': 2}\n")
    reg = Registry("widget", modules=("regtest_decl",),
                   collect=lambda mod: [(n, v, f"value {v}", mod.__name__) for n, v in mod.WIDGETS.items()])
    assert reg.listing() == [("a", "value 1"), ("b", "value 2")] and reg.origin("a") == "regtest_decl"


# -- the five registries ----------------------------------------------------------------------


def test_every_registry_of_prunebench_is_one_registry():
    from bench.studies.profiles import PROFILES
    from bench.registry import METHODS
    from bench.sources.aliases import ALIASES
    from bench.training.zoo_families import FAMILIES
    from fitting.laws import LAWS

    for reg in (METHODS, LAWS, PROFILES, ALIASES, FAMILIES):
        assert isinstance(reg, Registry), reg
    assert {"depth", "width", "blockwise", "nm"} <= set(METHODS)
    assert {"p2", "chinchilla"} <= set(LAWS)
    assert {"nano", "smoke", "paper"} <= set(PROFILES)
    assert {"tiny-llama", "smollm2-135m", "nano-llama-l1", "nano-smoke-s2"} <= set(ALIASES)
    assert {"nano-llama", "nano-qwen2", "nano-smoke"} <= set(FAMILIES)
    assert METHODS.group == "prunebench.pruners" and LAWS.group == "prunebench.laws"


def test_a_profile_named_like_a_study_is_refused(tmp_path):
    from pathlib import Path

    from bench.errors import UsageError
    from bench.studies import profiles

    with profiles.PROFILES.scratch():
        with pytest.raises(UsageError, match="profile 'nano' of mine.toml is already registered by "
                                             "bench/studies/nano.toml"):
            profiles.PROFILES.add("nano", tmp_path / "nano.toml", origin="mine.toml", help="a second nano")
        profiles.PROFILES.add("regtest-mine", tmp_path / "a.toml", origin="a.toml", help="mine")
        with pytest.raises(UsageError, match="profile 'regtest-mine' .* already registered"):
            profiles.PROFILES.add("regtest-mine", tmp_path / "b.toml", origin="b.toml", help="mine again")
        assert "regtest-mine: mine" in profiles.profile_help()
        assert profiles.profile_path("regtest-mine") == Path(tmp_path / "a.toml")
    assert "regtest-mine" not in profiles.profile_names()


def test_a_zoo_family_is_a_set_of_model_aliases_while_registered():
    from bench.sources.aliases import ALIASES
    from bench.training import zoo_families

    fam = zoo_families.Family("nano-regtest", "llama", (zoo_families.BaseSize("r1", 16, 1, 1, 1, 32, pretrain_tokens=2048, lr=1e-2),),
                     vocab_size=300)
    with zoo_families.FAMILIES.scratch():
        zoo_families.register_family(fam)
        assert "nano-regtest-r1" in ALIASES and ALIASES.origin("nano-regtest-r1").startswith("bench.training.zoo")
        with pytest.raises(Exception, match="zoo family 'nano-regtest' of .* already registered"):
            zoo_families.register_family(zoo_families.Family("nano-regtest", "qwen2", fam.sizes, vocab_size=300))
    assert "nano-regtest-r1" not in ALIASES and "nano-regtest" not in zoo_families.FAMILIES


def test_a_separate_package_adds_a_law_through_an_entry_point(tmp_path, monkeypatch):
    """A module that is no part of fitting, installed with a ``prunebench.laws`` entry point."""
    import numpy as np

    from fitting import Run, fit
    from fitting.forms import candidates
    from fitting.laws import LAWS, get_law

    (tmp_path / "regtest_law.py").write_text(textwrap.dedent('''
        import numpy as np
        from fitting.laws import Law, Unit, register

        @register("regtest-power")
        class Power(Law):
            """L = B / D**beta"""

            candidate = "a plugin's pure power law"
            candidate_rank = 99
            params = ("b", "beta")
            inputs = ("D",)
            units = {"D": Unit("tokens", 1e6)}
            grid = {"b": (0.0, 2.0), "beta": (0.1, 1.0)}

            def log_predict(self, theta, x, jac=False):
                log_d = np.log(x["D"])[None, :]
                out = theta[:, :1] - theta[:, 1:2] * log_d
                if not jac:
                    return out
                return out, np.stack([np.ones_like(out), -np.broadcast_to(log_d, out.shape)], axis=1)

            def constants(self, p):
                return {"B": float(np.exp(p["b"])), "beta": p["beta"]}
    '''))
    info = tmp_path / "regtest_law-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: regtest-law\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{LAWS.group}]\nregtest-power = regtest_law\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    LAWS.names()
    try:
        with LAWS.scratch():
            LAWS.rediscover()
            assert "regtest-power" in LAWS and LAWS.origin("regtest-power") == "regtest_law"
            assert LAWS.help("regtest-power") == "L = B / D**beta"
            d = np.geomspace(1e6, 1e9, 12)
            res = fit([Run("r", "g", {}, d, 3.0 / (d / 1e6) ** 0.3)], "regtest-power")
            assert res.constants["beta"] == pytest.approx(0.3, rel=1e-6)
            assert get_law(res.law) is LAWS["regtest-power"]
            # and it joins the candidate forms every study group is fitted with, last by its rank
            assert list(candidates().items())[-1] == ("regtest-power", "a plugin's pure power law")
    finally:
        sys.modules.pop("regtest_law", None)
    assert "regtest-power" not in LAWS.names() and "regtest-power" not in candidates()
