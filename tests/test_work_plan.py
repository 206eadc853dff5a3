"""Which goals one dialogue is given: a primary goal, then follow-ups its person would pursue."""

from __future__ import annotations

from dialforge.model.domain import Domain
from dialforge.model.tasks import Task
from dialforge.pipeline.preparation import DomainPlan
from dialforge.runner.work import plan_dialogues


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
