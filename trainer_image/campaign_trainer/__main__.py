import sys

from campaign_trainer.cli import main

sys.exit(main())
