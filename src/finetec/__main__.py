import sys

from finetec.cli import main

sys.exit(main())
