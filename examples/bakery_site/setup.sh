#!/bin/sh
# Turns a copy of site/ into the repository each dialogue starts from: two commits on main, a branch
# "spring-menu" with a menu change waiting to be merged, and an uncommitted change to the opening hours.
set -e
git init -q -b main
git config user.name "Priya Shah"
git config user.email "priya@crumbandco.example"
export GIT_AUTHOR_DATE="2025-03-03T09:00:00" GIT_COMMITTER_DATE="2025-03-03T09:00:00"
git add README.md menu.csv pages/about.md
git commit -q -m "Add the menu and the about page"
git add pages/opening-hours.md
GIT_AUTHOR_DATE="2025-03-04T09:00:00" GIT_COMMITTER_DATE="2025-03-04T09:00:00" git commit -q -m "Add opening hours"
git checkout -q -b spring-menu
printf 'hot cross bun,pastry,1.90,no\nrhubarb tart,cake,3.50,no\n' >> menu.csv
GIT_AUTHOR_DATE="2025-03-10T16:00:00" GIT_COMMITTER_DATE="2025-03-10T16:00:00" git commit -q -am "Spring menu: hot cross buns and rhubarb tart"
git checkout -q main
sed -i 's/| Sunday | 9:00 to 13:00 |/| Sunday | 9:00 to 13:00 |\n\nEaster Monday (21 April): 8:00 to 14:00./' pages/opening-hours.md
