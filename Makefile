# warden: the two-command quick start is `make demo` and `make test` (as root on Debian 12).
# Both install what they need from Debian first (scripts/setup.sh, idempotent).

BUILD ?= build
PYTEST ?= /usr/bin/python3 -m pytest

.PHONY: all setup build test unit integration escape workload fuzz format-check fmt bench demo clean

all: build

setup:
	@./scripts/setup.sh

$(BUILD)/build.ninja:
	meson setup $(BUILD)

build: setup $(BUILD)/build.ninja
	ninja -C $(BUILD)

test: build format-check unit fuzz integration escape workload

format-check:
	@./scripts/format.sh --check

fmt:
	@./scripts/format.sh

unit: build
	meson test -C $(BUILD) --suite unit --print-errorlogs

integration: build
	$(PYTEST) -q tests/integration

escape: build
	$(PYTEST) -q tests/escape

workload: build
	$(PYTEST) -q tests/workload

fuzz: build
	./tests/fuzz/run.sh $(BUILD)

bench: build
	/usr/bin/python3 bench/run.py --build $(BUILD)

demo: build
	./demo/run.sh $(BUILD)

clean:
	rm -rf $(BUILD)
