#ifndef POCKETVM_I8042_H
#define POCKETVM_I8042_H

#include "core/vm.h"

/* i8042_create - ports 0x60/0x64; a 0xFE command requests VM_EXIT_RESET. */
int i8042_create(struct vm *vm);

#endif
