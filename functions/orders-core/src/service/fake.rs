//! An in-memory store behind the ports, for testing the use cases' own logic (replays, retries,
//! re-reads, state checks) with `cargo test` alone. What the database guarantees (atomicity,
//! conditions under concurrency) is tested against DynamoDB Local in `tests/`.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;

use platform::dynamo::{Consumed, Recorded, StoreError};

use super::CreateOrderError;
use super::ports::{
    ChangeOrder, ChangeOrderError, Deadline, NewOrder, OrderChange, PlaceOrder, ReadOrder,
    ReadProducts, RecordConsumed, StoredOrder,
};
use crate::domain::{OrderId, OrderStatus, Product, ProductId, Stock};
use crate::events::OrderEventType;

#[derive(Default)]
pub(super) struct FakeStore {
    pub products: Mutex<HashMap<ProductId, Product>>,
    pub orders: Mutex<HashMap<OrderId, StoredOrder>>,
    /// (consumer, event id) of every event applied.
    pub inbox: Mutex<HashSet<(String, String)>>,
    /// The type of every order event written, in order.
    pub events: Mutex<Vec<OrderEventType>>,
    /// The next this many transactions fail as a conflict would.
    pub conflicts: Mutex<u32>,
    pub transactions: Mutex<u32>,
    /// Reads of orders and of products' terms (consistent ones counted apart).
    pub order_reads: Mutex<u32>,
    pub product_reads: Mutex<u32>,
    pub consistent_product_reads: Mutex<u32>,
}

impl FakeStore {
    pub fn with_product(self, product: Product) -> Self {
        self.products
            .lock()
            .unwrap()
            .insert(product.id.clone(), product);
        self
    }

    fn conflict(&self) -> bool {
        *self.transactions.lock().unwrap() += 1;
        let mut conflicts = self.conflicts.lock().unwrap();
        let conflicted = *conflicts > 0;
        *conflicts = conflicts.saturating_sub(1);
        conflicted
    }

    /// Changes a product as an admin would, behind the use case's back.
    pub fn edit_product(&self, id: &ProductId, edit: impl FnOnce(&mut Product)) {
        edit(self.products.lock().unwrap().get_mut(id).unwrap());
    }

    pub fn reads(&self) -> (u32, u32, u32) {
        (
            *self.order_reads.lock().unwrap(),
            *self.product_reads.lock().unwrap(),
            *self.consistent_product_reads.lock().unwrap(),
        )
    }

    pub fn stock(&self, id: &ProductId) -> i64 {
        self.products.lock().unwrap()[id].stock.get()
    }

    pub fn set_status(&self, id: OrderId, status: OrderStatus) {
        let mut orders = self.orders.lock().unwrap();
        let stored = orders.get_mut(&id).unwrap();
        stored.order.status = status;
    }
}

impl ReadOrder for FakeStore {
    async fn order(&self, id: OrderId) -> Result<Option<StoredOrder>, StoreError> {
        *self.order_reads.lock().unwrap() += 1;
        Ok(self.orders.lock().unwrap().get(&id).cloned())
    }
}

impl ReadProducts for FakeStore {
    async fn products(
        &self,
        ids: &[&ProductId],
        consistent: bool,
    ) -> Result<HashMap<ProductId, Product>, StoreError> {
        *self.product_reads.lock().unwrap() += 1;
        if consistent {
            *self.consistent_product_reads.lock().unwrap() += 1;
        }
        let products = self.products.lock().unwrap();
        Ok(ids
            .iter()
            .filter_map(|id| products.get(*id).map(|p| ((*id).clone(), p.clone())))
            .collect())
    }
}

impl PlaceOrder for FakeStore {
    async fn place_order(&self, new: &NewOrder<'_>) -> Result<(), CreateOrderError> {
        if self.conflict() {
            return Err(StoreError::Transient.into());
        }
        let mut orders = self.orders.lock().unwrap();
        if orders.contains_key(&new.order.order_id) {
            return Err(CreateOrderError::OrderExists);
        }
        let mut products = self.products.lock().unwrap();
        for line in &new.order.items {
            let product = products
                .get(&line.product_id)
                .ok_or_else(|| CreateOrderError::UnknownProduct(line.product_id.clone()))?;
            if let Some(limit) = product.max_per_order
                && !limit.allows(line.quantity)
            {
                return Err(CreateOrderError::AboveMaxPerOrder {
                    product: line.product_id.clone(),
                    requested: line.quantity,
                    limit: limit.get(),
                });
            }
            if product.stock.get() < i64::from(line.quantity.get()) {
                return Err(CreateOrderError::InsufficientStock {
                    product: line.product_id.clone(),
                    requested: line.quantity,
                    available: product.stock.get(),
                });
            }
            if product.price != line.unit_price {
                return Err(CreateOrderError::PriceChanged(line.product_id.clone()));
            }
        }
        for line in &new.order.items {
            let product = products.get_mut(&line.product_id).unwrap();
            product.stock = Stock::on_hand(product.stock.get() - i64::from(line.quantity.get()))
                .map_err(|_| CreateOrderError::Store(StoreError::Transient))?;
        }
        orders.insert(
            new.order.order_id,
            StoredOrder {
                order: new.order.clone(),
                request_hash: new.request_hash.map(str::to_owned),
            },
        );
        Ok(())
    }
}

impl ChangeOrder for FakeStore {
    async fn change_order(&self, change: &OrderChange<'_>) -> Result<(), ChangeOrderError> {
        if self.conflict() {
            return Err(ChangeOrderError::Changed);
        }
        if let Some(consumed) = change.consumed
            && self
                .inbox
                .lock()
                .unwrap()
                .contains(&(consumed.consumer.clone(), consumed.event_id.clone()))
        {
            return Err(ChangeOrderError::AlreadyApplied);
        }
        let order = change.order;
        let mut orders = self.orders.lock().unwrap();
        let stored = orders
            .get_mut(&order.order_id)
            .ok_or(ChangeOrderError::Changed)?;
        let deadline_holds = match (change.deadline, stored.order.expires_at) {
            (Deadline::Any, _) => true,
            (Deadline::NotPassed(at), Some(until)) => until > at,
            (Deadline::Passed(at), Some(until)) => until <= at,
            (_, None) => false,
        };
        if stored.order.status != change.from
            || (change.unshipped && stored.order.shipment_id.is_some())
            || !deadline_holds
        {
            return Err(ChangeOrderError::Changed);
        }
        let mut products = self.products.lock().unwrap();
        let gone: Vec<ProductId> = change
            .restock
            .iter()
            .filter(|l| !products.contains_key(&l.product_id))
            .map(|l| l.product_id.clone())
            .collect();
        if !gone.is_empty() {
            return Err(ChangeOrderError::ProductGone(gone));
        }
        stored.order = order.clone();
        for line in &change.restock {
            if let Some(product) = products.get_mut(&line.product_id) {
                product.stock =
                    Stock::on_hand(product.stock.get() + i64::from(line.quantity.get()))
                        .expect("stock plus units is not negative");
            }
        }
        if let Some(event) = change.event {
            self.events.lock().unwrap().push(event.event_type);
        }
        if let Some(consumed) = change.consumed {
            self.inbox
                .lock()
                .unwrap()
                .insert((consumed.consumer.clone(), consumed.event_id.clone()));
        }
        Ok(())
    }
}

impl RecordConsumed for FakeStore {
    async fn record(&self, consumed: &Consumed) -> Result<Recorded, StoreError> {
        let key = (consumed.consumer.clone(), consumed.event_id.clone());
        Ok(if self.inbox.lock().unwrap().insert(key) {
            Recorded::Now
        } else {
            Recorded::Before
        })
    }
}
