//! The digital twin's tests: each behaviour rule reproduced, rehearsals of every example, the
//! auditor catching mis-ordered plans.

mod twin {
    mod avaya_cms;
    pub mod common;
    mod linux_ha;
}
