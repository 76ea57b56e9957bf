# Thin wrapper over Meson/Ninja.
#   make          build build/pocketvm (and the test guests)
#   make guest    build the default Linux guest (kernel + initramfs) into build/guest
#   make run      build everything and boot the default guest
#   make test     build everything and run the whole test suite
#   make deps     install the Debian packages the above need
BUILD ?= build
MESON_FLAGS ?= --werror

.PHONY: all deps guest run test clean
all: $(BUILD)/build.ninja
	ninja -C $(BUILD)

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_FLAGS)

deps:
	tools/install-deps.sh

guest: deps
	guest/build.sh $(BUILD)/guest

run: deps all guest
	$(BUILD)/pocketvm run $(RUN_ARGS)

test: deps all guest
	tests/run.sh $(BUILD)

clean:
	rm -rf $(BUILD) build-asan build-fuzz
