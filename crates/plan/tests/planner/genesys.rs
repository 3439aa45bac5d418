//! Rules of the profile, checked on plans (being written).
