"""Which goals one dialogue is given: a primary goal, then follow-ups its person would pursue."""

from __future__ import annotations

import math
from collections import Counter

from dialforge.model.domain import Domain
from dialforge.model.tasks import Task
from dialforge.pipeline.preparation import DomainPlan
from dialforge.runner.work import DialogueWork, plan_dialogues


def test_an_independent_follow_up_only_joins_the_dialogues_of_people_who_would_raise_it() -> None:
    customer = Task(id="customer", description="You are Maya Okafor and want to know where order 12 is.")
    manager = Task(id="manager", description="You are Nell Harrow, the shop's manager, and want this year's sales.")
    present = Task(
        id="present", description="You want a picture book as a present for a friend.", asked_by=["customer"]
    )
    reorder = Task(
        id="reorder", description="You want the titles with fewer than 3 copies in stock.", asked_by=["manager"]
    )
    plan = DomainPlan(
        domain=Domain(name="Bookshop"), tools=[], policy="", tasks=[customer, manager], followups=[present, reorder]
    )

    work = plan_dialogues([plan], per_domain=12, tasks_per_dialogue=(2, 2), run_seed=1)

    assert {tuple(task.id for task in dialogue.tasks) for dialogue in work} == {
        ("customer", "present"),
        ("manager", "reorder"),
    }


def goals(*ids: str, **fields: object) -> list[Task]:
    return [Task(id=i, description=f"You want {i} done.", **fields) for i in ids]  # type: ignore[arg-type]


def uses(work: list[DialogueWork]) -> Counter[str]:
    return Counter(task.id for dialogue in work for task in dialogue.tasks)


def test_no_follow_up_is_given_to_more_dialogues_than_its_even_share() -> None:
    """One follow-up fits every person and the others fit one or two: it must not take most of the dialogues."""
    primaries = goals("p1", "p2", "p3", "p4", "p5")
    followups = [
        Task(id="everyone", description="You want the opening hours.", asked_by=["p1", "p2", "p3", "p4", "p5"]),
        Task(id="ext1", description="You want order 1 changed.", follows="p1"),
        Task(id="two", description="You want a gift card.", asked_by=["p2", "p3"]),
        Task(id="four", description="You want the return policy.", asked_by=["p4"]),
        Task(id="five", description="You want store prices.", asked_by=["p5"]),
    ]
    plan = DomainPlan(domain=Domain(name="Shop"), tools=[], policy="", tasks=primaries, followups=followups)

    for run_seed in range(20):
        work = plan_dialogues([plan], per_domain=5, tasks_per_dialogue=(2, 2), run_seed=run_seed)

        used = uses(work)
        assert all(used[task.id] == 1 for task in [*primaries, *followups]), (run_seed, used)


def test_goals_are_spread_evenly_over_many_dialogues() -> None:
    primaries = goals("p1", "p2", "p3")
    followups = goals("f1", "f2", "f3", "f4", asked_by=["p1", "p2", "p3"])
    plan = DomainPlan(domain=Domain(name="Shop"), tools=[], policy="", tasks=primaries, followups=followups)

    work = plan_dialogues([plan], per_domain=30, tasks_per_dialogue=(1, 3), run_seed=4)

    needed = sum(len(dialogue.tasks) - 1 for dialogue in work)
    used = uses(work)
    assert [used[task.id] for task in primaries] == [10, 10, 10]
    assert max(used[task.id] for task in followups) <= math.ceil(needed / len(followups))
    assert max(used[t.id] for t in followups) - min(used[t.id] for t in followups) <= 1
    again = plan_dialogues([plan], per_domain=30, tasks_per_dialogue=(1, 3), run_seed=4)
    assert again == work, "a resumed run plans the same dialogues"


def test_a_dialogue_gets_fewer_follow_ups_than_drawn_when_the_ones_that_fit_it_are_used_up() -> None:
    primaries = goals("p1", "p2")
    followups = [*goals("f1", follows="p1"), *goals("f2", "f3", "f4", follows="p2")]
    plan = DomainPlan(domain=Domain(name="Shop"), tools=[], policy="", tasks=primaries, followups=followups)

    work = plan_dialogues([plan], per_domain=6, tasks_per_dialogue=(2, 2), run_seed=1)

    assert uses(work)["f1"] == 2, "the even share: ceil(6 needed / 4 available)"
    assert sorted(len(dialogue.tasks) for dialogue in work if dialogue.tasks[0].id == "p1") == [1, 2, 2]


def test_a_follow_up_that_fits_fewer_people_goes_first_among_the_least_used() -> None:
    primaries = goals("p1", "p2")
    followups = [*goals("anyone", asked_by=["p1", "p2"]), *goals("p1s", asked_by=["p1"])]
    plan = DomainPlan(domain=Domain(name="Shop"), tools=[], policy="", tasks=primaries, followups=followups)

    for run_seed in range(10):
        work = plan_dialogues([plan], per_domain=8, tasks_per_dialogue=(2, 2), run_seed=run_seed)

        assert all(len(dialogue.tasks) == 2 for dialogue in work), "every dialogue gets its follow-up"
