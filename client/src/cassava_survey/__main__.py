"""`python -m cassava_survey` = the `cassava-survey` command."""

from cassava_survey.cli import main

main()
