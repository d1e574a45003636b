//! A type-erased value that travels down a Deferred's chain.
//!
//! A chain's callbacks change the type of the result (`Deferred<Meal>` becomes `Deferred<bool>`),
//! so the chain stores results erased. `Box<dyn Any>` would cost one allocation per step; most
//! results are small (integers, `String`s, `Vec`s, `Rc`s, `()`), so `Value` keeps anything up to
//! three words with pointer alignment inline and boxes only larger types.
//!
//! Invariant: `data` holds an initialised `T` (inline) or a `Box<T>` (boxed) for exactly the `T`
//! whose vtable `vt` points to; `take` checks the `TypeId` before reading, and `Drop` runs the
//! vtable's drop exactly once unless `take` consumed the value.
//!
//! `Value` is neither `Send` nor `Sync` (a marker field): it may hold an `Rc` or anything else
//! that must stay on its thread, and the erased storage would otherwise make it both. The
//! assertion at the end of this file keeps it so.

use std::any::TypeId;
use std::marker::PhantomData;
use std::mem::{self, ManuallyDrop, MaybeUninit};

type Storage = [usize; 3];

struct VTable {
    type_id: TypeId,
    type_name: fn() -> &'static str,
    /// `None` for types without drop glue, so dropping them costs no indirect call.
    drop: Option<unsafe fn(*mut Storage)>,
}

struct Inline<T>(T);
struct Boxed<T>(T);

impl<T: 'static> Inline<T> {
    const VT: &'static VTable = &VTable {
        type_id: TypeId::of::<T>(),
        type_name: std::any::type_name::<T>,
        drop: if mem::needs_drop::<T>() {
            Some(drop_inline::<T>)
        } else {
            None
        },
    };
}

impl<T: 'static> Boxed<T> {
    const VT: &'static VTable = &VTable {
        type_id: TypeId::of::<T>(),
        type_name: std::any::type_name::<T>,
        drop: Some(drop_boxed::<T>),
    };
}

unsafe fn drop_inline<T>(p: *mut Storage) {
    // SAFETY: the caller guarantees `p` holds an initialised inline `T`.
    unsafe { std::ptr::drop_in_place(p as *mut T) }
}

unsafe fn drop_boxed<T>(p: *mut Storage) {
    // SAFETY: the caller guarantees `p` holds a `Box<T>` written by `Value::new`.
    unsafe { drop(std::ptr::read(p as *mut Box<T>)) }
}

const fn fits_inline<T>() -> bool {
    mem::size_of::<T>() <= mem::size_of::<Storage>()
        && mem::align_of::<T>() <= mem::align_of::<Storage>()
}

/// One result of any `'static` type.
pub(crate) struct Value {
    data: MaybeUninit<Storage>,
    vt: &'static VTable,
    /// Not `Send`/`Sync`: the value may be an `Rc` (module docs).
    _not_send: PhantomData<*const ()>,
}

impl Value {
    #[inline]
    pub(crate) fn new<T: 'static>(v: T) -> Value {
        let mut data = MaybeUninit::<Storage>::uninit();
        if fits_inline::<T>() {
            // SAFETY: `T` fits in `Storage` in size and alignment (checked above).
            unsafe { std::ptr::write(data.as_mut_ptr() as *mut T, v) };
            Value {
                data,
                vt: Inline::<T>::VT,
                _not_send: PhantomData,
            }
        } else {
            // SAFETY: a `Box<T>` is one pointer, which fits.
            unsafe { std::ptr::write(data.as_mut_ptr() as *mut Box<T>, Box::new(v)) };
            Value {
                data,
                vt: Boxed::<T>::VT,
                _not_send: PhantomData,
            }
        }
    }

    #[inline]
    pub(crate) fn unit() -> Value {
        Value::new(())
    }

    #[inline]
    pub(crate) fn is<T: 'static>(&self) -> bool {
        self.vt.type_id == TypeId::of::<T>()
    }

    pub(crate) fn type_name(&self) -> &'static str {
        (self.vt.type_name)()
    }

    /// The value as a `T`, or the value back if it holds another type.
    #[inline]
    pub(crate) fn take<T: 'static>(self) -> Result<T, Value> {
        if !self.is::<T>() {
            return Err(self);
        }
        let mut this = ManuallyDrop::new(self);
        let p = this.data.as_mut_ptr();
        // SAFETY: the type matches (checked above); `ManuallyDrop` stops the vtable drop, so the
        // value is read exactly once.
        unsafe {
            if fits_inline::<T>() {
                Ok(std::ptr::read(p as *mut T))
            } else {
                Ok(*std::ptr::read(p as *mut Box<T>))
            }
        }
    }

    /// A reference to the value as a `T`, if it is one.
    pub(crate) fn downcast_ref<T: 'static>(&self) -> Option<&T> {
        if !self.is::<T>() {
            return None;
        }
        let p = self.data.as_ptr();
        // SAFETY: the type matches; inline values live in `data`, boxed ones behind the pointer.
        unsafe {
            if fits_inline::<T>() {
                Some(&*(p as *const T))
            } else {
                Some(&**(p as *const Box<T>))
            }
        }
    }
}

impl std::fmt::Debug for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Value<{}>", self.type_name())
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        if let Some(d) = self.vt.drop {
            // SAFETY: `data` holds the value described by `vt` (module invariant).
            unsafe { d(self.data.as_mut_ptr()) }
        }
    }
}

/// Compile-time check that `Value` is neither `Send` nor `Sync`: if it were, the two impls of
/// each trait below would both apply to it and the `_` could not be inferred.
const _: () = {
    trait AmbiguousIfSend<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSend<()> for T {}
    struct IfSend;
    impl<T: ?Sized + Send> AmbiguousIfSend<IfSend> for T {}

    trait AmbiguousIfSync<A> {
        fn check() {}
    }
    impl<T: ?Sized> AmbiguousIfSync<()> for T {}
    struct IfSync;
    impl<T: ?Sized + Sync> AmbiguousIfSync<IfSync> for T {}

    let _ = <Value as AmbiguousIfSend<_>>::check;
    let _ = <Value as AmbiguousIfSync<_>>::check;
};

#[cfg(test)]
mod tests {
    use super::*;
    use std::rc::Rc;

    #[test]
    fn round_trips_small_and_large() {
        let v = Value::new(42u8);
        assert_eq!(v.take::<u8>().ok(), Some(42));
        let v = Value::new(String::from("hi"));
        assert!(v.downcast_ref::<String>().is_some());
        assert_eq!(v.take::<String>().ok().as_deref(), Some("hi"));
        let big = [7u64; 10];
        let v = Value::new(big);
        assert_eq!(v.take::<[u64; 10]>().ok(), Some(big));
        let v = Value::new(1u128);
        assert_eq!(v.take::<u128>().ok(), Some(1));
    }

    #[test]
    fn wrong_type_gives_value_back() {
        let v = Value::new(5i32);
        let v = v.take::<u32>().unwrap_err();
        assert_eq!(v.type_name(), "i32");
        assert_eq!(v.take::<i32>().ok(), Some(5));
    }

    #[test]
    fn drops_exactly_once() {
        let rc = Rc::new(());
        let v = Value::new(rc.clone());
        assert_eq!(Rc::strong_count(&rc), 2);
        drop(v);
        assert_eq!(Rc::strong_count(&rc), 1);
        let v = Value::new([rc.clone(), rc.clone(), rc.clone(), rc.clone()]);
        assert_eq!(Rc::strong_count(&rc), 5);
        drop(v);
        assert_eq!(Rc::strong_count(&rc), 1);
        let v = Value::new(rc.clone());
        let back = v.take::<Rc<()>>().unwrap();
        assert_eq!(Rc::strong_count(&rc), 2);
        drop(back);
        assert_eq!(Rc::strong_count(&rc), 1);
    }
}
