/* placeholder: this module is being written */
typedef int kvsfs_placeholder_t;
