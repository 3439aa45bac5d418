//! The digital twin's tests: each behaviour rule reproduced, rehearsals of every example, the
//! auditor catching mis-ordered plans.

mod twin {
    mod avaya_cms;
    mod callmanager4;
    mod cisco_ucm;
    pub mod common;
    mod genesys;
    mod linux_ha;
}
